//! The layering rule of `shared/app` (README, "Inside `shared/app`"): no two folders import each other, however
//! long the way round. Read from the sources: every `crate::<folder>` path outside comments and test modules is an
//! arrow from the file's folder (`src/<folder>/…`, or the top-level file `src/<folder>.rs`) to `<folder>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// folder → folder it imports → one file that does (for the message).
type Arrows = BTreeMap<String, BTreeMap<String, String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_stem().is_some_and(|s| s != "tests" && s != "proptests")
        {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and its inline test module (`#[cfg(test)] mod tests { … }` runs to the
/// end of a file here; a `#[cfg(test)] mod tests;` declaration only drops itself).
fn code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if line.starts_with("#[cfg(test)]") {
            match lines.get(i + 1) {
                Some(next) if next.trim_end().ends_with(';') => {
                    i += 2;
                    continue;
                }
                _ => break,
            }
        }
        let line = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out
}

/// The folders a file's code names through `crate::<folder>`.
fn imported_folders(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `nusatrade_app::…`-like names ending in `crate`
        }
        let name: String =
            code[at + "crate::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn folder_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").map(str::to_owned).unwrap_or(first)
}

fn arrows(src: &Path) -> Arrows {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut arrows = Arrows::new();
    for file in &files {
        let from = folder_of(src, file);
        let text = std::fs::read_to_string(file).expect("read a source file");
        for to in imported_folders(&code(&text)) {
            if to != from {
                let shown = file.strip_prefix(src).unwrap().display().to_string();
                arrows.entry(from.clone()).or_default().entry(to).or_insert(shown);
            }
        }
    }
    arrows
}

/// A way round from `start` back to itself, if there is one.
fn circle_through(arrows: &Arrows, start: &str) -> Option<Vec<String>> {
    fn walk(arrows: &Arrows, start: &str, at: &str, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> bool {
        for next in arrows.get(at).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(arrows, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(arrows, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_two_folders_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let arrows = arrows(&src);
    assert!(arrows.len() > 10, "the scan found the folders: {:?}", arrows.keys().collect::<Vec<_>>());
    // Each circle once, told from its first folder in name order.
    let mut circles = BTreeSet::new();
    for folder in arrows.keys() {
        if let Some(mut path) = circle_through(&arrows, folder) {
            let first = path.iter().enumerate().min_by_key(|(_, f)| f.as_str()).map_or(0, |(i, _)| i);
            path.rotate_left(first);
            let steps: Vec<String> = path
                .iter()
                .zip(path.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", arrows[a][b]))
                .collect();
            circles.insert(steps.join(", "));
        }
    }
    let circles: Vec<String> = circles.into_iter().collect();
    assert!(circles.is_empty(), "folders of shared/app import each other in circles:\n{}", circles.join("\n"));
}

#[test]
fn the_scan_sees_arrows_and_would_see_a_circle() {
    let text = "use crate::ports::Key; // crate::auth in a comment\nfn f() { crate::wire::iso(now) }\n\
                #[cfg(test)]\nmod tests {\n use crate::auth::x;\n}\n";
    let found = imported_folders(&code(text));
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["ports", "wire"]);

    let mut arrows = Arrows::new();
    for (a, b) in [("channels", "brokers"), ("brokers", "connector"), ("connector", "auth")] {
        arrows.entry(a.into()).or_default().insert(b.into(), format!("{a}/x.rs"));
    }
    assert!(circle_through(&arrows, "connector").is_none());
    arrows.entry("auth".into()).or_default().insert("brokers".into(), "auth/y.rs".into());
    assert_eq!(circle_through(&arrows, "brokers").unwrap(), ["brokers", "connector", "auth"]);
}
