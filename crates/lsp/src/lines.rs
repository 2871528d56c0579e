//! Conversions between byte offsets (what the checker's spans hold) and LSP positions
//! (zero-based lines, UTF-16 columns).

use lsp_types::{Position, Range};

/// The line starts of one text, for offset ↔ position conversions.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The position of byte `offset` (clamped into the text and onto a char boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0).min(offset);
        let col: usize = text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(line as u32, col as u32)
    }

    /// The range of bytes `lo..hi`.
    pub fn range(&self, text: &str, lo: usize, hi: usize) -> Range {
        Range::new(self.position(text, lo), self.position(text, hi.max(lo)))
    }

    /// The byte offset of a position; columns past the end of a line clamp to its end and
    /// lines past the end of the text clamp to its end.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map(|&e| e - 1)
            .unwrap_or(text.len());
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_non_ascii() {
        let text = "a ⊗ b\nτ = 1\n";
        let ix = LineIndex::new(text);
        let b = text.find('b').unwrap();
        assert_eq!(ix.position(text, b), Position::new(0, 4));
        assert_eq!(ix.offset(text, Position::new(0, 4)), b);
        let eq = text.find('=').unwrap();
        assert_eq!(ix.position(text, eq), Position::new(1, 2));
        assert_eq!(ix.offset(text, Position::new(1, 2)), eq);
        assert_eq!(
            ix.offset(text, Position::new(0, 99)),
            text.find('\n').unwrap()
        );
        assert_eq!(ix.offset(text, Position::new(9, 0)), text.len());
        assert_eq!(ix.position(text, 2), Position::new(0, 2));
        assert_eq!(ix.position(text, 3), Position::new(0, 2));
    }
}
