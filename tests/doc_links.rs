//! Every link in the project's own pages resolves. README.md is a short front door that
//! sends the reader on to RUNBOOK.md, the manual in `docs/` and `backends/wal/DESIGN.md`,
//! which link to each other's sections; a page moved or a heading renamed breaks such a link
//! silently. This finds every markdown link `[text](target)` outside fenced code in those
//! pages and checks that a relative target exists (relative to the linking page) and that a
//! `#anchor` names a heading of the target page as GitHub slugs it (web and mail links are
//! not followed). It fails listing every broken link with its file and line.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository root: Cargo's manifest directory, else (compiled by plain `rustc --test`)
/// the current directory.
fn root() -> PathBuf {
    let cwd = || std::env::current_dir().expect("a current directory");
    option_env!("CARGO_MANIFEST_DIR").map_or_else(cwd, PathBuf::from)
}

/// The pages checked: README.md, RUNBOOK.md, backends/wal/DESIGN.md and every .md under docs/.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["README.md", "RUNBOOK.md", "backends/wal/DESIGN.md"]
        .map(|p| root.join(p))
        .into();
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out
}

/// The lines outside fenced code blocks (``` or ~~~), numbered from 1.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let numbered = text.lines().enumerate().map(|(i, line)| (i + 1, line));
    let fence = |l: &str| l.trim_start().starts_with("```") || l.trim_start().starts_with("~~~");
    numbered
        .filter(|&(_, line)| {
            in_fence ^= fence(line);
            !fence(line) && !in_fence
        })
        .collect()
}

/// GitHub's anchor for a heading's text: lowercase; characters other than letters, digits,
/// spaces, hyphens and underscores removed; spaces turned into hyphens.
fn slug(heading: &str) -> String {
    let lower = heading.trim().to_lowercase();
    let kept = lower
        .chars()
        .filter(|&c| c.is_alphanumeric() || " -_".contains(c));
    kept.map(|c| if c == ' ' { '-' } else { c }).collect()
}

/// The anchors of a page's headings; a repeated slug gets -1, -2, ... as on GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim().trim_end_matches('#'));
        let mut anchor = base.clone();
        for n in 1.. {
            if seen.insert(anchor.clone()) {
                break;
            }
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The targets of the `[text](target)` and `![alt](target)` links on a line, leaving out
/// inline code and a link's title (`[text](target "title")`).
fn links(line: &str) -> Vec<String> {
    let code_free: Vec<&str> = line.split('`').step_by(2).collect();
    let code_free = code_free.join(" ");
    let (mut out, mut rest) = (Vec::new(), code_free.as_str());
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // The `[text` part may be on an earlier line.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        out.push(target.to_owned());
        rest = &after[end..];
    }
    out
}

/// What is wrong with `target`, linked from `page` (whose text is `text`), if anything.
fn broken(page: &Path, text: &str, target: &str) -> Option<String> {
    const NOT_FOLLOWED: [&str; 3] = ["http://", "https://", "mailto:"];
    if NOT_FOLLOWED.iter().any(|s| target.starts_with(s)) {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = page.parent()?.join(path);
    if path.is_empty() && anchor.is_empty() {
        return Some("an empty link".into());
    } else if !path.is_empty() && !file.exists() {
        return Some(format!("no file {path} next to this page"));
    } else if anchor.is_empty() || !(path.is_empty() || path.ends_with(".md")) {
        return None;
    }
    let (linked, name) = match path {
        "" => (text.to_owned(), "this page"),
        _ => (fs::read_to_string(&file).ok()?, path),
    };
    (!anchors(&linked).contains(anchor)).then(|| format!("no heading #{anchor} in {name}"))
}

#[test]
fn every_link_in_the_docs_resolves() {
    let root = root();
    let (mut checked, mut failures) = (0, Vec::new());
    for page in pages(&root) {
        let text = fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        let name = page.strip_prefix(&root).unwrap_or(&page).to_owned();
        for (number, line) in prose(&text) {
            for target in links(line) {
                checked += 1;
                if let Some(why) = broken(&page, &text, &target) {
                    let name = name.display();
                    failures.push(format!("{name}:{number}: ({target}): {why}"));
                }
            }
        }
    }
    assert!(checked > 50, "{checked} links only: the walk is broken");
    let n = failures.len();
    assert!(n == 0, "{n} broken links:\n{}", failures.join("\n"));
}

#[test]
fn headings_slug_and_links_parse_as_on_github() {
    let etcd = anchors("## etcd: a replicated log beside ours");
    assert!(etcd.contains("etcd-a-replicated-log-beside-ours"));
    assert_eq!(slug("What `.ci/run` checks"), "what-cirun-checks");
    let part = slug("Part 3b: The Same Crash Against sled (port 8003)");
    assert_eq!(part, "part-3b-the-same-crash-against-sled-port-8003");
    let page = "# A\n## A\n```sh\n# not a heading\n```\n## snake_case, too\n## A\n";
    let want = ["a", "a-1", "snake_case-too", "a-2"].map(String::from);
    assert_eq!(anchors(page), HashSet::from(want));
    let line = "see [a](b.md#c), `[x](y)`, [d](e.md \"title\") and ![p](docs/f.png)";
    assert_eq!(links(line), ["b.md#c", "e.md", "docs/f.png"]);
    assert_eq!(links("its text began a line above](g.md#h)."), ["g.md#h"]);
}
