//! Names: what a user's file is shown and saved as, and the layout of object
//! keys (`user_<id>/originals/<upload>/<name>`, `user_<id>/jobs/job_<id>/…`),
//! which retention relies on to tell the service's objects from others.

/// Object keys carry only `[A-Za-z0-9._-]` from a user's file name.
pub fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "file".into() } else { s.chars().take(100).collect() }
}

/// The longest display name kept, in characters (the extension is kept whole).
const DISPLAY_NAME_CHARS: usize = 120;

/// A user's file name made safe to show and to offer as a download name,
/// once, when the upload starts: only its last path component (`/` and `\`
/// both separate), without control characters, bidirectional overrides or
/// invisible format characters, with the characters Windows forbids in file
/// names replaced, whitespace collapsed, no leading dots, no trailing dots
/// or spaces, and at most [`DISPLAY_NAME_CHARS`] characters; `upload` when
/// nothing is left.
pub fn display_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(last.len());
    for c in last.chars() {
        // Controls, and the format and filler characters that render as nothing
        // (or reorder what follows: the bidirectional ones).
        let invisible = c.is_control()
            || matches!(
                c,
                '\u{00AD}'
                    | '\u{061C}'
                    | '\u{115F}'
                    | '\u{1160}'
                    | '\u{180E}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{206F}'
                    | '\u{3164}'
                    | '\u{FEFF}'
                    | '\u{FFA0}'
                    | '\u{FFF9}'..='\u{FFFB}'
                    | '\u{E0000}'..='\u{E007F}'
            );
        if invisible {
            continue;
        }
        let c = if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c };
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']);
    let name = if trimmed.chars().count() <= DISPLAY_NAME_CHARS {
        trimmed.to_string()
    } else {
        // Keep a short extension whole and cut the stem.
        let (stem, ext) = match trimmed.rsplit_once('.') {
            Some((stem, ext)) if !ext.is_empty() && ext.chars().count() <= 10 && !stem.is_empty() => (stem, Some(ext)),
            _ => (trimmed, None),
        };
        let keep = DISPLAY_NAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
        let stem: String = stem.chars().take(keep).collect();
        let stem = stem.trim_end_matches(['.', ' ']);
        match ext {
            Some(e) => format!("{stem}.{e}"),
            None => stem.to_string(),
        }
    };
    if name.is_empty() {
        return "upload".into();
    }
    // Windows' device names (CON, NUL, COM1, …) cannot be saved as files there.
    let stem = name.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0');
    if reserved { format!("_{name}") } else { name }
}

/// Where an upload's original lives.
pub fn original_key(user: &str, upload: &str, filename: &str) -> String {
    format!("user_{user}/originals/{upload}/{}", safe_name(filename))
}

/// Where everything a job writes lives.
pub fn job_prefix(user: &str, job: &str) -> String {
    format!("user_{user}/jobs/job_{job}/")
}

/// Deterministic key of a job's stem file.
pub fn output_key(user: &str, job: &str, stem: &str, ext: &str) -> String {
    format!("{}output/{}.{ext}", job_prefix(user, job), safe_stem(stem))
}

fn safe_stem(stem: &str) -> String {
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+' { c } else { '_' }).collect()
}

/// Whether `key` has this service's layout (an original or a job's file):
/// whatever else shares the bucket is not ours to judge.
pub fn is_service_key(key: &str) -> bool {
    key.strip_prefix("user_")
        .and_then(|k| k.split_once('/'))
        .is_some_and(|(_, rest)| rest.starts_with("originals/") || rest.starts_with("jobs/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_safe() {
        assert_eq!(display_name("song.flac"), "song.flac");
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("..\\..\\Windows\\win.ini"), "win.ini");
        assert_eq!(display_name("a/b/"), "upload");
        assert_eq!(display_name("..."), "upload");
        assert_eq!(display_name(".hidden.wav"), "hidden.wav");
        assert_eq!(display_name("a\0b\r\nc\td.wav"), "abcd.wav");
        assert_eq!(display_name("  two   words  .mp3 "), "two words .mp3");
        // A right-to-left override would show "song\u{202E}vaw.exe" as "songexe.wav".
        assert_eq!(display_name("song\u{202E}vaw.exe"), "songvaw.exe");
        assert_eq!(display_name("x\u{2066}y\u{200B}z\u{FEFF}.wav"), "xyz.wav");
        assert_eq!(display_name("a\u{00AD}b\u{E0041}c\u{3164}d\u{206F}.wav"), "abcd.wav");
        assert_eq!(display_name("con.wav"), "_con.wav");
        assert_eq!(display_name("LPT1"), "_LPT1");
        assert_eq!(display_name("COM0.wav"), "COM0.wav");
        assert_eq!(display_name("console.wav"), "console.wav");
        assert_eq!(display_name("what?<is>:this|\"*.wav"), "what__is__this___.wav");
        assert_eq!(display_name("Ünïcödé 音楽.flac"), "Ünïcödé 音楽.flac");
        let long = format!("{}.flac", "é".repeat(1000));
        let d = display_name(&long);
        assert_eq!(d.chars().count(), DISPLAY_NAME_CHARS);
        assert!(d.ends_with("é.flac"), "{d}");
        let no_ext = "x".repeat(1000);
        assert_eq!(display_name(&no_ext).len(), DISPLAY_NAME_CHARS);
        for name in ["../../etc/passwd", "a\r\nb", "\u{202E}", &long] {
            let d = display_name(name);
            assert!(!d.contains(['/', '\\']) && !d.chars().any(char::is_control), "{d:?}");
        }
    }

    #[test]
    fn the_key_layout() {
        assert_eq!(original_key("u1", "up1", "My Song (final).flac"), "user_u1/originals/up1/My_Song__final_.flac");
        assert_eq!(output_key("u1", "j1", "vocals+bass", "wav"), "user_u1/jobs/job_j1/output/vocals+bass.wav");
        assert_eq!(output_key("u1", "j1", "a b/c", "flac"), "user_u1/jobs/job_j1/output/a_b_c.flac");
        assert!(is_service_key("user_u1/originals/x/y.wav") && is_service_key(&job_prefix("u", "j")));
        assert!(
            !is_service_key("other/app/file") && !is_service_key("user_u1/elsewhere/x") && !is_service_key("user_")
        );
    }
}
