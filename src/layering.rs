//! The module rules of docs/architecture.md ("Rules"), checked against the code: the table there
//! is parsed, every `crate::<module>` path in `src/` (outside comments and unit-test modules) is
//! read, and an import the table does not allow, or a table that allows a cycle, fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// module → the modules it may import, from the "Rules" table.
fn rules(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
    let section = doc
        .split("\n## Rules\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/architecture.md has a \"## Rules\" section");
    let mut order: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(module), Some(allowed)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let module = module.trim_matches('`').to_owned();
        let mut set: BTreeSet<String> = allowed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        if allowed.starts_with("every module above") {
            set.extend(order.iter().cloned());
        }
        order.push(module.clone());
        out.insert(module, set);
    }
    out
}

/// The top-level module a file of `src/` belongs to (`src/collect/cpu.rs` → `collect`).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// `crate::<module>` paths of `text`, outside `//` comments and the `#[cfg(test)] mod tests {}`
/// block that closes a file.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in code.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            // `belabox_store::...` etc. are other crates; `crate::` after an identifier
            // character (`some_crate::`) is not this crate.
            let before = line[..i].chars().last();
            if !name.is_empty() && !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                out.insert(name);
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn modules_import_only_what_docs_architecture_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("read the doc");
    let rules = rules(&doc);
    assert!(rules.len() >= 10, "the Rules table: {rules:?}");
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let mut violations = Vec::new();
    let mut modules = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(root.join("src")).expect("under src");
        // The binary and the crate root name every module; test-only files are tests; `link/`
        // holds the build script, which is no module of the crate.
        if rel.starts_with("link")
            || rel == Path::new("main.rs")
            || rel == Path::new("lib.rs")
            || rel == Path::new("layering.rs")
            || rel.file_name().is_some_and(|n| n == "tests.rs")
        {
            continue;
        }
        let Some(module) = module_of(rel) else {
            continue;
        };
        modules.insert(module.clone());
        let Some(allowed) = rules.get(&module) else {
            violations.push(format!("{}: module `{module}` has no row", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read a source file");
        for used in imports(&text) {
            if used != module && !allowed.contains(&used) {
                violations.push(format!("{}: `{module}` imports `{used}`", rel.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against docs/architecture.md (Rules):\n{}",
        violations.join("\n")
    );
    for m in rules.keys() {
        assert!(
            modules.contains(m),
            "the Rules table names `{m}`, which src/ does not have"
        );
    }
}

#[test]
fn the_rules_allow_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("read the doc");
    let rules = rules(&doc);
    // Each row may name only rows above it: then no cycle is possible.
    let order: Vec<&String> = {
        let section = doc.split("\n## Rules\n").nth(1).unwrap_or_default();
        section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter_map(|m| rules.get_key_value(m).map(|(k, _)| k))
            .collect()
    };
    for (i, m) in order.iter().enumerate() {
        for dep in &rules[*m] {
            let j = order.iter().position(|o| *o == dep);
            assert!(
                j.is_some_and(|j| j < i),
                "`{m}` may import `{dep}`, which is not a row above it"
            );
        }
    }
}

#[test]
fn the_import_reader_sees_paths_and_skips_comments_and_tests() {
    let text = "use crate::model::ring;\n// crate::agent in a comment\nfn f() { crate::net::x(); belabox_crate::y(); }\n#[cfg(test)]\nmod tests {\n    use crate::upload;\n}\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["model", "net"]);
}
