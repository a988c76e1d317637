//! The architecture as a test (ARCHITECTURE.md): which top-level module of `src/` may use which,
//! no import cycle between them, and no source file over about 400 lines unless it says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// For each part, the parts it may use (`crate::<part>`). `cli` may use anything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("policy", &[]),
    ("net", &[]),
    ("clock", &[]),
    ("metrics", &[]),
    ("shutdown", &[]),
    ("token", &["clock", "policy"]),
    ("config", &["net", "policy", "token"]),
    ("logging", &["config"]),
    ("store", &["clock", "config", "token"]),
    ("auth", &["clock", "config", "metrics", "store", "token"]),
    ("proxy", &["auth", "clock", "config", "metrics", "net", "policy", "store", "token"]),
    ("admin", &["auth", "clock", "config", "metrics", "net", "policy", "store", "token"]),
    ("app", &["admin", "auth", "clock", "config", "metrics", "net", "proxy", "store", "token"]),
];

/// Longest a source file may be without saying why it stays together.
const MAX_LINES: usize = 430;
const WHY_MARKER: &str = "stays together for that reason";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::<part>` references per top-level part, comments left out.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let part = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if part == "main" || part == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let used = deps.entry(part.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != part {
                    used.insert(name);
                }
            }
        }
    }
    deps
}

#[test]
fn each_part_uses_only_what_it_may() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for (part, used) in dependencies() {
        if part == "cli" {
            continue;
        }
        let Some(may) = allowed.get(part.as_str()) else {
            problems.push(format!("{part}: not in the table of tests/architecture.rs (and ARCHITECTURE.md)"));
            continue;
        };
        for u in used {
            if !may.contains(&u.as_str()) {
                problems.push(format!("{part} uses {u}"));
            }
        }
    }
    assert!(problems.is_empty(), "dependencies against the architecture:\n{}", problems.join("\n"));
}

#[test]
fn there_is_no_import_cycle() {
    let deps = dependencies();
    fn visit<'a>(
        node: &'a str,
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
        }
        if !done.insert(node) {
            return;
        }
        path.push(node);
        for next in deps.get(node).into_iter().flatten() {
            visit(next, deps, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for part in deps.keys() {
        visit(part, &deps, &mut Vec::new(), &mut done);
    }
}

#[test]
fn source_files_stay_small_or_say_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text.lines().count();
            (lines > MAX_LINES && !text.contains(WHY_MARKER)).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines that do not say why:\n{}", long.join("\n"));
}
