//! `splitsound model pull|list|rm|verify`, and what `-m NAME` means: a model
//! in the cache, fetched first only when `--download` says so or its registry
//! entry allows it.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use splitsound_core::Error;
use splitsound_core::registry::{Entry, Installed, Listed, ModelCache, PullProgress, Registry, check_name};

use crate::{EXIT_CANCELLED, EXIT_FAILED, EXIT_USAGE, error_json, is_usage_error};

/// Whether `spec` would be looked up as a model name: not a path that exists,
/// not a built-in, and shaped like a name.
pub fn is_model_name(spec: &str) -> bool {
    !Path::new(spec).exists()
        && !spec.starts_with("builtin:")
        && !splitsound_core::builtin::BUILTIN_NAMES.contains(&spec)
        && check_name(spec).is_ok()
}

/// The path that opens model `name`: the cache's copy, pulled first when it is
/// missing and `download` (or the entry's `auto_download`) allows it.
pub fn resolve(name: &str, registries: &[String], download: bool, as_json: bool) -> Result<String, Error> {
    let cache = ModelCache::from_env()?;
    if let Some(m) = cache.get(name)? {
        return Ok(m.load_path().to_string_lossy().into_owned());
    }
    // A miss reads the registries (a mirror's entry may allow fetching on
    // first use); unreachable ones only lose their entries for the message.
    let registry = match Registry::load(registries) {
        Err(Error::Download { .. }) if !download => Registry::load_local(registries)?,
        r => r?,
    };
    let Some(entry) = registry.get(name) else {
        // Neither a built-in nor a model: list both.
        let builtins = splitsound_core::builtin::BUILTIN_NAMES.iter().map(|b| format!("builtin:{b}"));
        let models = registry.entries().iter().map(|e| e.name.clone());
        return Err(Error::UnknownSeparator { name: name.to_string(), available: builtins.chain(models).collect() });
    };
    if !(download || entry.auto_download) {
        // Offline: say what would be fetched, and how (or take what another
        // process installed meanwhile).
        return cache.resolve(name, &registry).map(|p| p.to_string_lossy().into_owned());
    }
    if !as_json {
        eprintln!("fetching model {name} into {}", cache.root().display());
    }
    Ok(pull(&cache, entry, as_json)?.load_path().to_string_lossy().into_owned())
}

/// Pulls with a progress bar on a terminal (JSON lines with `--json`), Ctrl-C cancelling.
fn pull(cache: &ModelCache, entry: &Entry, as_json: bool) -> Result<Installed, Error> {
    let cancel = crate::ctrl_c();
    let bar = if !as_json && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(entry.files.iter().map(|f| f.size).sum());
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_message(entry.name.clone());
        b
    } else {
        ProgressBar::hidden()
    };
    let mut last_pct = u64::MAX;
    let mut report = |p: &PullProgress| {
        bar.set_position(p.done);
        if as_json {
            let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
            if pct != last_pct {
                last_pct = pct;
                println!(
                    "{}",
                    json!({"event": "download", "model": p.model, "file": p.file, "done": p.done, "total": p.total})
                );
            }
        }
    };
    let result = cache.pull(entry, &mut report, &cancel);
    match &result {
        Ok(_) => bar.finish_and_clear(),
        Err(_) => bar.abandon(),
    }
    result
}

fn fail(e: Error, as_json: bool) -> ExitCode {
    if as_json {
        println!("{}", error_json(None, &e));
    } else {
        eprintln!("error: {e}");
    }
    ExitCode::from(match e {
        Error::Cancelled => EXIT_CANCELLED,
        ref e if is_usage_error(e) || matches!(e, Error::UnknownModel { .. } | Error::Registry { .. }) => EXIT_USAGE,
        _ => EXIT_FAILED,
    })
}

/// `model pull NAME|URL`.
pub fn pull_cmd(target: &str, registries: &[String], as_json: bool) -> ExitCode {
    let run = || -> Result<Installed, Error> {
        let cache = ModelCache::from_env()?;
        let registry = Registry::load(registries)?;
        pull(&cache, registry.lookup(target)?, as_json)
    };
    match run() {
        Ok(m) => {
            if as_json {
                println!("{}", json!({"event": "installed", "model": m.entry.name, "path": m.load_path()}));
            } else {
                println!("{}", m.load_path().display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, as_json),
    }
}

/// `model list [--installed]`.
pub fn list_cmd(installed_only: bool, registries: &[String], as_json: bool) -> ExitCode {
    let run = || -> Result<Vec<Listed>, Error> {
        let cache = ModelCache::from_env()?;
        let registry = if installed_only { None } else { Some(Registry::load(registries)?) };
        splitsound_core::registry::list(&cache, registry.as_ref())
    };
    let rows = match run() {
        Ok(r) => r,
        Err(e) => return fail(e, as_json),
    };
    if as_json {
        println!("{}", serde_json::to_string(&rows).expect("serialises"));
        return ExitCode::SUCCESS;
    }
    for r in rows {
        println!(
            "{:<26} {:<15} {:>7.1} MB  {:<9}  {}",
            r.entry.name,
            serde_json::to_value(r.entry.family).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            r.size as f64 / 1e6,
            if r.installed { "installed" } else { "" },
            r.entry.stems.join(", ")
        );
    }
    ExitCode::SUCCESS
}

/// `model rm NAME`.
pub fn rm_cmd(name: &str) -> ExitCode {
    let run = || -> Result<bool, Error> { ModelCache::from_env()?.remove(name) };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: model `{name}` is not installed");
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => fail(e, false),
    }
}

/// `model verify [NAME]`: every installed model when no name is given.
pub fn verify_cmd(name: Option<&str>, as_json: bool) -> ExitCode {
    let run = || ModelCache::from_env()?.verify_models(name);
    let results = match run() {
        Ok(r) => r,
        Err(e) => return fail(e, as_json),
    };
    let mut all_ok = true;
    for (model, checks) in &results {
        let ok = checks.iter().all(|c| c.is_ok());
        all_ok &= ok;
        if as_json {
            println!("{}", json!({"model": model, "ok": ok, "files": checks}));
        } else {
            let damaged =
                format!("DAMAGED (fetch it again: splitsound model rm {model} && splitsound model pull {model})");
            println!("{model}: {}", if ok { "ok" } else { &damaged });
            for c in checks.iter().filter(|c| !c.is_ok()) {
                println!("  {}", serde_json::to_string(c).expect("serialises"));
            }
        }
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}
