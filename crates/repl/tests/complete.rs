//! Tab completion in-process: commands, names, stdlib modules and items, box ports.

use dyn_check::modules::Stdlib;
use dyn_repl::session::{Io, Session, Status};

fn session_with_counter() -> Session {
    let stdlib = Stdlib::Dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"));
    let mut s = Session::new(stdlib, false);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    let st = s.process(
        "system Counter : { out count: Int  in inc: Int } {\n  state n: Int = 0\n  out count = n\n  next n = n + inc\n}\n",
        &mut io,
    );
    assert_eq!(st, Status::Ok);
    s
}

fn complete(s: &Session, line: &str) -> (usize, Vec<String>) {
    s.index.borrow().complete(line, line.len())
}

#[test]
fn ports_after_a_box_name() {
    let s = session_with_counter();
    let buf = "system W : { out c: Int } {\n  box k: Counter\n  k.";
    assert_eq!(
        complete(&s, buf),
        (buf.len(), vec!["count".into(), "inc".into()])
    );
    let buf = "system W : { out c: Int } {\n  box k[3]: Counter\n  k[1].i";
    assert_eq!(complete(&s, buf), (buf.len() - 1, vec!["inc".into()]));
    // An unknown box offers nothing.
    assert_eq!(complete(&s, "  q.").1, Vec::<String>::new());
}

#[test]
fn stdlib_modules_and_items_after_use() {
    let s = session_with_counter();
    let (at, mods) = complete(&s, "use std.");
    assert_eq!(at, 8);
    assert!(mods.contains(&"neurons".to_string()), "{mods:?}");
    let (_, items) = complete(&s, "use std.neurons.F");
    assert_eq!(items, vec!["FHN".to_string()]);
    assert_eq!(complete(&s, "use s").1, vec!["std".to_string()]);
}

#[test]
fn commands_keywords_and_names() {
    let s = session_with_counter();
    assert_eq!(complete(&s, ":ru"), (0, vec![":run".to_string()]));
    assert_eq!(complete(&s, "Cou").1, vec!["Counter".to_string()]);
    assert_eq!(complete(&s, "sys").1, vec!["system".to_string()]);
    assert_eq!(complete(&s, "1 + sq").1, vec!["sqrt".to_string()]);
    // Odd cursor positions do not panic.
    let _ = s.index.borrow().complete("τσ.", 1);
    let _ = s.index.borrow().complete("", 10);
}
