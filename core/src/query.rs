//! From a short English description to a separator's stems and an intent.
//!
//! `"remove the vocals"` → `(["vocals"], Remove)`; `"just the bass"` →
//! `(["bass"], Isolate)`; `"karaoke"` → `(["vocals"], Remove)`. A description that
//! names an instrument the separator lacks falls back to the stem that contains it
//! (piano → `other`, drums → `percussive`) and says so in `notes`.

use crate::error::{Error, Result};

/// Whether the user wants the described sound alone or everything but it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    Isolate,
    Remove,
}

impl QueryMode {
    /// `"isolate"` or `"remove"`, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            QueryMode::Isolate => "isolate",
            QueryMode::Remove => "remove",
        }
    }
}

/// What a description resolved to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryResolution {
    /// Stems that make up the described sound (deduplicated, in the separator's order).
    pub targets: Vec<String>,
    pub mode: QueryMode,
    /// Explanations of fallbacks (`no piano stem; using other`).
    pub notes: Vec<String>,
}

struct Concept {
    /// What the user said it as, for notes.
    label: &'static str,
    /// Words (or joined phrases) that evoke it.
    words: &'static [&'static str],
    /// Stem names in order of preference; the first that the separator has wins.
    stems: &'static [&'static str],
    /// A mode the word implies on its own (karaoke → remove vocals).
    implies: Option<QueryMode>,
}

const CONCEPTS: &[Concept] = &[
    Concept {
        label: "vocals",
        words: &[
            "vocal",
            "vocals",
            "voice",
            "voices",
            "singer",
            "singers",
            "singing",
            "vox",
            "lyrics",
            "acapella",
            "acappella",
            "a_cappella",
            "a_capella",
            "speech",
            "dialogue",
            "dialog",
            "talking",
            "speaker",
            "narrator",
            "narration",
            "lead",
        ],
        stems: &["vocals", "voice", "speech", "foreground", "harmonic"],
        implies: None,
    },
    Concept {
        label: "vocals",
        words: &["karaoke", "instrumental", "instrumentals"],
        stems: &["vocals", "voice", "foreground", "harmonic"],
        implies: Some(QueryMode::Remove),
    },
    Concept {
        label: "accompaniment",
        words: &["accompaniment", "backing", "music", "background", "ambience", "ambient", "beat_track"],
        stems: &["accompaniment", "background", "no_vocals", "other"],
        implies: None,
    },
    Concept {
        label: "drums",
        words: &[
            "drum",
            "drums",
            "drumkit",
            "percussion",
            "percussive",
            "beat",
            "beats",
            "kick",
            "kicks",
            "snare",
            "snares",
            "hihat",
            "hi_hat",
            "hats",
            "cymbal",
            "cymbals",
            "toms",
            "tom",
            "claps",
            "clap",
        ],
        stems: &["drums", "percussive"],
        implies: None,
    },
    Concept {
        label: "bass",
        words: &["bass", "bassline", "basslines", "sub", "subbass", "808"],
        stems: &["bass", "harmonic", "other"],
        implies: None,
    },
    Concept {
        label: "piano",
        words: &["piano", "pianos", "keys", "keyboard", "keyboards", "rhodes"],
        stems: &["piano", "other", "harmonic", "accompaniment", "background"],
        implies: None,
    },
    Concept {
        label: "guitar",
        words: &["guitar", "guitars", "riff", "riffs"],
        stems: &["guitar", "other", "harmonic", "accompaniment", "background"],
        implies: None,
    },
    Concept {
        label: "other",
        words: &[
            "other",
            "rest",
            "melody",
            "melodies",
            "chords",
            "chord",
            "harmony",
            "harmonies",
            "harmonic",
            "tonal",
            "synth",
            "synths",
            "strings",
            "pads",
            "pad",
            "horns",
            "brass",
            "organ",
        ],
        stems: &["other", "harmonic", "accompaniment", "background"],
        implies: None,
    },
];

const REMOVE_WORDS: &[&str] = &[
    "remove",
    "removing",
    "without",
    "no",
    "minus",
    "mute",
    "muted",
    "cut",
    "strip",
    "delete",
    "drop",
    "kill",
    "except",
    "but",
    "eliminate",
    "suppress",
    "erase",
    "less",
    "rid",
    "out",
];

/// Resolves `query` against the stems a separator produces.
pub fn resolve_query(query: &str, stems: &[String]) -> Result<QueryResolution> {
    let unresolved = || Error::UnresolvedQuery { query: query.to_string(), stems: stems.to_vec() };
    let lower = query.to_lowercase();
    let words = normalise(&lower);
    if words.is_empty() {
        return Err(unresolved());
    }
    let mut mode =
        if words.iter().any(|w| REMOVE_WORDS.contains(&w.as_str())) { QueryMode::Remove } else { QueryMode::Isolate };
    // "everything but X" / "all except X" keep X out: the same as removing X.
    let mut targets: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for w in &words {
        // A stem named directly wins (also plural/singular forms).
        if let Some(s) = stems.iter().find(|s| s.as_str() == w || format!("{s}s") == *w || s.trim_end_matches('s') == w)
        {
            push_unique(&mut targets, s);
            continue;
        }
        let Some(c) = CONCEPTS.iter().find(|c| c.words.contains(&w.as_str())) else {
            continue;
        };
        if let Some(m) = c.implies {
            mode = m;
        }
        let Some(pick) = c.stems.iter().find(|p| stems.iter().any(|s| s == *p)) else {
            notes.push(format!("this separator has no stem for {}", c.label));
            continue;
        };
        if *pick != c.stems[0] && !stems.iter().any(|s| s == c.label) {
            let note = format!("no `{}` stem; using `{pick}`, which contains it", c.label);
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        push_unique(&mut targets, pick);
    }
    if targets.is_empty() {
        return Err(unresolved());
    }
    targets.sort_by_key(|t| stems.iter().position(|s| s == t));
    Ok(QueryResolution { targets, mode, notes })
}

/// Where a description goes: to the stems of a model with fixed stems, or,
/// when none of them is described and a text-prompted model is at hand, to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum QueryPlan {
    Stems(QueryResolution),
    Text(TextQuery),
}

/// A description for a text-prompted model: the sound, without the words
/// that say what to do with it, and whether the user wants it or everything but it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TextQuery {
    pub description: String,
    pub mode: QueryMode,
}

/// Routes `query`: descriptions that name a stem of `stems` resolve to it
/// ([`resolve_query`]); anything else goes to a text-prompted model when
/// `text_model` says one is configured, and otherwise fails with
/// [`Error::UnresolvedQuery`], whose message says that one would serve it.
pub fn plan_query(query: &str, stems: &[String], text_model: bool) -> Result<QueryPlan> {
    match resolve_query(query, stems) {
        Ok(r) => Ok(QueryPlan::Stems(r)),
        Err(e @ Error::UnresolvedQuery { .. }) if !text_model => Err(e),
        Err(Error::UnresolvedQuery { .. }) => text_query(query).map(QueryPlan::Text),
        Err(e) => Err(e),
    }
}

/// What a leading phrase does to the intent.
#[derive(Clone, Copy, PartialEq)]
enum Intent {
    Isolate,
    Remove,
    /// "everything but": the opposite of what the rest asks.
    Invert,
}

/// Leading phrases that say what to do with the sound, longest first.
/// ("mute" and "cut" are left out: "mute trumpet" and "cut glass" are sounds.)
const INTENT_PREFIXES: &[(&str, Intent)] = &[
    ("everything except", Intent::Invert),
    ("everything but", Intent::Invert),
    ("all except", Intent::Invert),
    ("all but", Intent::Invert),
    ("get rid of", Intent::Remove),
    ("take out", Intent::Remove),
    ("remove", Intent::Remove),
    ("without", Intent::Remove),
    ("suppress", Intent::Remove),
    ("eliminate", Intent::Remove),
    ("delete", Intent::Remove),
    ("erase", Intent::Remove),
    ("no", Intent::Remove),
    ("isolate", Intent::Isolate),
    ("extract", Intent::Isolate),
    ("separate", Intent::Isolate),
    ("keep only", Intent::Isolate),
    ("keep", Intent::Isolate),
    ("only", Intent::Isolate),
    ("just", Intent::Isolate),
    ("give me", Intent::Isolate),
    ("get", Intent::Isolate),
];

/// Descriptions longer than this many characters are refused ([`text_query`],
/// and a text-prompted model before tokenising).
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// The description a text-prompted model is given for `query`: "remove the
/// crowd noise" → ("the crowd noise", remove); "a dog barking" → itself,
/// isolate; "remove everything but the dog" → ("the dog", isolate). Quotes
/// around the description are dropped.
pub fn text_query(query: &str) -> Result<TextQuery> {
    let separator = |c: char| c.is_whitespace() || c == ':' || c == ',';
    let mut rest = query.trim();
    let (mut remove, mut inverted) = (false, false);
    // At most three phrases: "just isolate everything but the dog".
    for _ in 0..3 {
        // The phrases are ASCII: compared without case on the text itself, so
        // that byte offsets stay the original's.
        let Some(&(p, intent)) = INTENT_PREFIXES.iter().find(|(p, _)| {
            rest.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
                && rest[p.len()..].chars().next().is_none_or(separator)
        }) else {
            break;
        };
        match intent {
            Intent::Remove => remove = true,
            Intent::Invert => inverted = !inverted,
            Intent::Isolate => {}
        }
        rest = rest[p.len()..].trim_start_matches(separator);
    }
    let trimmed = rest.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | '?'));
    let description = trimmed.trim_matches(|c: char| matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’')).trim();
    if description.is_empty() {
        return Err(Error::UnresolvedQuery { query: query.to_string(), stems: vec![] });
    }
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "description",
            format!("a description of at most {MAX_DESCRIPTION_CHARS} characters"),
            format!("{chars} characters"),
        ));
    }
    let mode = if remove != inverted { QueryMode::Remove } else { QueryMode::Isolate };
    Ok(TextQuery { description: description.to_string(), mode })
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Lower-case words with multi-word names joined (`hi hat` → `hi_hat`).
fn normalise(s: &str) -> Vec<String> {
    let cleaned: String = s.chars().map(|c| if c.is_alphanumeric() || c == '-' { c } else { ' ' }).collect();
    let raw: Vec<&str> = cleaned.split_whitespace().collect();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let w = raw[i].replace('-', "_");
        if i + 1 < raw.len() {
            let joined = format!("{w}_{}", raw[i + 1].replace('-', "_"));
            if matches!(joined.as_str(), "hi_hat" | "a_cappella" | "a_capella" | "beat_track") {
                out.push(joined);
                i += 2;
                continue;
            }
            if w == "get" && raw[i + 1] == "rid" {
                out.push("rid".into());
                i += 2;
                continue;
            }
        }
        out.push(w);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_examples_of_the_issue() {
        let four = s(&["drums", "bass", "other", "vocals"]);
        let six = s(&["drums", "bass", "other", "vocals", "guitar", "piano"]);
        let r = |q: &str, st: &[String]| resolve_query(q, st).unwrap();
        assert_eq!(r("isolate the vocals", &four).targets, ["vocals"]);
        assert_eq!(r("isolate the vocals", &four).mode, QueryMode::Isolate);
        let rd = r("remove drums", &four);
        assert_eq!((rd.targets.as_slice(), rd.mode), (&["drums".to_string()][..], QueryMode::Remove));
        assert_eq!(r("just the bass", &four).targets, ["bass"]);
        assert_eq!(r("just the bass", &four).mode, QueryMode::Isolate);
        let k = r("karaoke", &four);
        assert_eq!((k.targets, k.mode), (s(&["vocals"]), QueryMode::Remove));
        assert_eq!(r("singer", &four).targets, ["vocals"]);
        assert_eq!(r("kick and snare", &four).targets, ["drums"]);
        let p = r("piano", &four);
        assert_eq!(p.targets, ["other"]);
        assert!(p.notes[0].contains("piano"), "{:?}", p.notes);
        assert_eq!(r("piano", &six).targets, ["piano"]);
        assert!(r("piano", &six).notes.is_empty());
        assert_eq!(r("everything but the drums", &four).mode, QueryMode::Remove);
        assert_eq!(r("Drums and Bass!", &four).targets, ["drums", "bass"]);
        assert_eq!(r("get rid of the hi-hat", &four).targets, ["drums"]);
        assert_eq!(r("get rid of the hi-hat", &four).mode, QueryMode::Remove);
    }

    #[test]
    fn builtin_stems() {
        let hp = s(&["harmonic", "percussive"]);
        assert_eq!(resolve_query("remove the drums", &hp).unwrap().targets, ["percussive"]);
        let c = s(&["vocals", "accompaniment"]);
        assert_eq!(resolve_query("instrumental", &c).unwrap().mode, QueryMode::Remove);
        let rp = s(&["foreground", "background"]);
        assert_eq!(resolve_query("the voice", &rp).unwrap().targets, ["foreground"]);
    }

    #[test]
    fn descriptions_route_to_stems_or_the_text_model() {
        let four = s(&["drums", "bass", "other", "vocals"]);
        assert!(matches!(plan_query("remove the vocals", &four, true), Ok(QueryPlan::Stems(_))));
        let t = |q: &str| match plan_query(q, &four, true) {
            Ok(QueryPlan::Text(t)) => (t.description, t.mode),
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(t("a dog barking"), ("a dog barking".into(), QueryMode::Isolate));
        assert_eq!(t("Remove the hum of the fridge."), ("the hum of the fridge".into(), QueryMode::Remove));
        assert_eq!(t("get rid of: the crowd noise"), ("the crowd noise".into(), QueryMode::Remove));
        assert_eq!(t("just isolate the siren"), ("the siren".into(), QueryMode::Isolate));
        // "nothing" starts with "no" but is not the word.
        assert_eq!(t("nothing else"), ("nothing else".into(), QueryMode::Isolate));
        // Double negation: keep the dog.
        assert_eq!(t("remove everything except the dog"), ("the dog".into(), QueryMode::Isolate));
        assert_eq!(t("Everything but \"the sirens\""), ("the sirens".into(), QueryMode::Remove));
        assert_eq!(t("mute trumpet"), ("mute trumpet".into(), QueryMode::Isolate));
        // A character whose lower case is longer does not shift the cut.
        assert_eq!(t("Remove the \u{212A}ettle"), ("the \u{212A}ettle".into(), QueryMode::Remove));
        match plan_query("a dog barking", &four, false) {
            Err(e @ Error::UnresolvedQuery { .. }) => assert!(e.to_string().contains("text-prompted"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(plan_query("remove", &four, true), Err(Error::UnresolvedQuery { .. })));
        // The length limit counts the description's characters, not the phrase around it.
        let longest = "é".repeat(MAX_DESCRIPTION_CHARS);
        assert_eq!(text_query(&format!("remove {longest}")).unwrap().description, longest);
        match text_query(&format!("{longest}x")) {
            Err(Error::InvalidArgument { name: "description", actual, .. }) => {
                assert_eq!(actual, format!("{} characters", MAX_DESCRIPTION_CHARS + 1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unresolvable_lists_stems() {
        let four = s(&["drums", "bass", "other", "vocals"]);
        for q in ["", "   ", "make it sound nicer", "¿?"] {
            match resolve_query(q, &four) {
                Err(Error::UnresolvedQuery { stems, .. }) => assert_eq!(stems, four),
                other => panic!("{q:?}: {other:?}"),
            }
        }
    }
}
