//! Recorded data to fit: a CSV table with a time column `t` and one column per recorded
//! quantity of the model (a state, port or let by its recordable name, as `dyn run` writes
//! them). Empty cells are missing values and do not count.

/// A table of observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// The observed quantities' names (the columns after `t`).
    pub columns: Vec<String>,
    /// Rows: time and one value per column (NaN where the cell is empty).
    pub rows: Vec<(f64, Vec<f64>)>,
}

impl Data {
    /// Reads a CSV file (see the module doc).
    pub fn read(path: &std::path::Path) -> Result<Data, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        Data::parse(&text).map_err(|e| format!("`{}`: {e}", path.display()))
    }

    /// Parses CSV text (see the module doc).
    pub fn parse(text: &str) -> Result<Data, String> {
        let mut rd = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = rd
            .headers()
            .map_err(|e| format!("the header cannot be read: {e}"))?
            .clone();
        let names: Vec<String> = header.iter().map(str::to_string).collect();
        let Some(tcol) = names.iter().position(|n| n == "t") else {
            return Err(format!(
                "no time column `t` in the header ({})",
                names.join(", ")
            ));
        };
        let columns: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != tcol)
            .map(|(_, n)| n.clone())
            .collect();
        if columns.is_empty() {
            return Err("no observed column besides `t`".into());
        }
        let mut rows = Vec::new();
        for (r, rec) in rd.records().enumerate() {
            let line = r + 2;
            let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
            if rec.len() != names.len() {
                return Err(format!(
                    "line {line}: {} cells, the header has {}",
                    rec.len(),
                    names.len()
                ));
            }
            let num = |s: &str, what: &str| -> Result<f64, String> {
                s.parse::<f64>()
                    .map_err(|_| format!("line {line}: `{s}` in column `{what}` is not a number"))
            };
            let t = num(&rec[tcol], "t")?;
            if !t.is_finite() || t < 0.0 {
                return Err(format!(
                    "line {line}: the time {t} is not a finite time ≥ 0"
                ));
            }
            let mut vals = Vec::with_capacity(columns.len());
            for (i, cell) in rec.iter().enumerate() {
                if i == tcol {
                    continue;
                }
                vals.push(if cell.is_empty() {
                    f64::NAN
                } else {
                    let v = num(cell, &names[i])?;
                    if !v.is_finite() {
                        return Err(format!("line {line}: the value {v} is not finite"));
                    }
                    v
                });
            }
            rows.push((t, vals));
        }
        if rows.is_empty() {
            return Err("no data rows".into());
        }
        Ok(Data { columns, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let d = Data::parse("t,x,y\n0,1,2\n0.5,,3\n").unwrap();
        assert_eq!(d.columns, vec!["x", "y"]);
        assert_eq!(d.rows[1].0, 0.5);
        assert!(d.rows[1].1[0].is_nan());
        assert!(
            Data::parse("x,y\n1,2\n")
                .unwrap_err()
                .contains("no time column")
        );
        assert!(
            Data::parse("t,x\n0,a\n")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(Data::parse("t,x\n").unwrap_err().contains("no data rows"));
        assert!(Data::parse("t,x\n-1,2\n").unwrap_err().contains("≥ 0"));
        assert!(
            Data::parse("t\n1\n")
                .unwrap_err()
                .contains("no observed column")
        );
    }
}
