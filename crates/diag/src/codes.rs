//! The table of diagnostic codes: one code per rule, with a one-line title.
//!
//! Every diagnostic any stage emits carries one of these codes. `dyn explain CODE`
//! prints the long explanation kept in `explain/CODE.md` beside this file.

/// A diagnostic code with its one-line title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The code as written, e.g. `E0060`.
    pub id: &'static str,
    /// What the rule is, in a few words.
    pub title: &'static str,
    /// The long explanation (markdown) with a wrong and a fixed example.
    pub explain: &'static str,
}

macro_rules! codes {
    ($($name:ident = $id:literal, $title:literal;)*) => {
        $(
            #[doc = $title]
            pub const $name: Code = Code {
                id: $id,
                title: $title,
                explain: include_str!(concat!("explain/", $id, ".md")),
            };
        )*
        /// Every code, in order.
        pub const ALL: &[Code] = &[$($name),*];
    };
}

codes! {
    // Lexing and parsing
    LEX_ERROR = "E0001", "unrecognised character";
    PARSE_ERROR = "E0002", "syntax error";
    BAD_LITERAL = "E0003", "malformed literal or unterminated comment";
    // Names and modules
    UNKNOWN_NAME = "E0010", "unknown name";
    DUPLICATE = "E0011", "duplicate definition";
    UNKNOWN_PORT = "E0012", "unknown port";
    MODULE_NOT_FOUND = "E0013", "module not found";
    IMPORT_CYCLE = "E0014", "import cycle";
    WRONG_KIND = "E0015", "name used as the wrong kind of thing";
    // Types
    TYPE_MISMATCH = "E0020", "type mismatch";
    SHAPE_MISMATCH = "E0021", "tensor shape mismatch";
    BAD_SIZE = "E0022", "bad numeral, size or index";
    BAD_CALL = "E0023", "wrong call: unknown function or wrong arguments";
    NOT_CONST = "E0024", "value is not known at compile time";
    BAD_SLICE = "E0025", "bad slice bounds";
    WRONG_RANK = "E0026", "tensor of the wrong rank";
    BAD_GRAD = "E0027", "cannot differentiate this";
    NOT_SQUARE = "E0028", "matrix is not square";
    // Interfaces and polynomials
    BAD_INTERFACE = "E0030", "malformed interface";
    NOT_FINITE = "E0031", "polynomial is not finite";
    NO_PORTS = "E0032", "interface has no port structure";
    // Lenses
    LENS_MISSING = "E0040", "lens leaves a port undefined";
    LENS_WRONG_SIDE = "E0041", "lens defines a port on the wrong side";
    LENS_FORBIDDEN_READ = "E0042", "lens reads a port its rule forbids";
    LENS_DUPLICATE = "E0043", "lens defines a port twice";
    // Systems
    STATE_UPDATE = "E0050", "state variable without exactly one update";
    OUT_UNDEFINED = "E0051", "out port undefined";
    MIXED_TIME = "E0052", "discrete and continuous time mixed";
    MODE_SCOPE = "E0053", "input read where its mode is not known";
    UNKNOWN_PARAM = "E0054", "unknown parameter";
    OUT_TWICE = "E0055", "out port defined twice";
    BAD_ASSIGN = "E0056", "assignment to something that is not state";
    MODE_MATCH = "E0057", "match on modes is not exhaustive or names an unknown mode";
    // Composites and wiring
    WIRED_TWICE = "E0060", "inner input wired twice";
    NOT_WIRED = "E0061", "inner input never wired";
    NOT_AN_INPUT = "E0062", "wire target is not an input port";
    ALGEBRAIC_LOOP = "E0063", "algebraic loop";
    RECURSIVE_SYSTEM = "E0064", "system contains itself";
    INDEX_RANGE = "E0065", "index out of range";
    // Learners
    LEARNER = "E0095", "malformed learner";
    FLOW = "E0096", "malformed flow";
    // Run blocks
    BAD_RUN = "E0070", "malformed run block";
    // Running
    UNSUPPORTED = "E0080", "not supported at run time yet";
    NOT_FINITE_STATE = "E0081", "state became NaN or infinite";
    BAD_PARAM = "E0082", "unknown or invalid parameter override";
    BAD_INPUT = "E0083", "bad input stream";
    LINALG_FAILED = "E0084", "singular matrix or failed eigenvalue computation";
    // Warnings
    UNUSED_PARAM = "W0001", "parameter never used";
    UNREAD_OUTPUT = "W0002", "output never read";
    SHADOWING = "W0003", "name shadows another";
}

/// Looks a code up by its id (`E0060`, case-insensitive).
pub fn lookup(id: &str) -> Option<Code> {
    ALL.iter().copied().find(|c| c.id.eq_ignore_ascii_case(id))
}
