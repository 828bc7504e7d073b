//! Writes the CRDs generated from the Rust types to `crds/` and
//! `charts/partita/crds/` (or only to the directory given as an argument).
//! `--check` compares instead of writing and exits 1 on drift.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut check = false;
    let mut dir: Option<PathBuf> = None;
    for arg in args.by_ref() {
        if arg == "--check" {
            check = true;
        } else {
            dir = Some(PathBuf::from(arg));
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = match dir {
        Some(d) => vec![d],
        None => vec![root.join("crds"), root.join("charts/partita/crds")],
    };
    let mut drift = Vec::new();
    for (dir, (file, crd)) in dirs.iter().flat_map(|d| {
        partita_operator::crd::all_crds()
            .into_iter()
            .map(move |c| (d, c))
    }) {
        let yaml = partita_operator::crd::render_crd_yaml(&crd)?;
        let path = dir.join(file);
        if check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != yaml {
                drift.push(path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(dir)?;
            std::fs::write(&path, yaml)?;
            println!("wrote {}", path.display());
        }
    }
    if !drift.is_empty() {
        eprintln!(
            "CRDs out of date (run `cargo run -p partita-operator --bin crdgen`): {}",
            drift.join(", ")
        );
        std::process::exit(1);
    }
    if check {
        println!("crds/ matches the Rust types");
    }
    Ok(())
}
