//! The one error type of splitsound-core.

use std::path::PathBuf;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which configured limit an input exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// [`crate::DecodeOptions::max_bytes`].
    Bytes,
    /// [`crate::DecodeOptions::max_duration_secs`], measured in seconds.
    DurationSecs,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Bytes => "bytes",
            Limit::DurationSecs => "seconds",
        })
    }
}

/// Everything that can go wrong in splitsound-core.
///
/// Construction problems (bad arguments, unknown names) are separate variants
/// from processing problems (undecodable input, cancellation), and every variant
/// carries the facts a caller needs to explain it to a user. The enum is
/// `#[non_exhaustive]`: match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ----- construction / arguments -------------------------------------------------------
    /// An argument is outside what the function accepts.
    #[error("invalid argument `{name}`: expected {expected}, got {actual}")]
    InvalidArgument { name: &'static str, expected: String, actual: String },

    /// A sample rate outside the supported range.
    #[error("unsupported sample rate {rate} Hz (supported: {min}..={max} Hz)")]
    UnsupportedSampleRate { rate: u32, min: u32, max: u32 },

    /// No separator of that name exists.
    #[error("unknown separator `{name}`; available: {}", available.join(", "))]
    UnknownSeparator { name: String, available: Vec<String> },

    /// A stem was asked for that the separator does not produce.
    #[error("unknown stem `{stem}`; this separator produces: {}", available.join(", "))]
    UnknownStem { stem: String, available: Vec<String> },

    /// A description could not be mapped to the separator's stems.
    #[error(
        "could not understand \"{query}\"; describe one of: {} (a text-prompted model, such as SAM-Audio, \
         would separate any described sound)",
        stems.join(", ")
    )]
    UnresolvedQuery { query: String, stems: Vec<String> },

    // ----- input audio --------------------------------------------------------------------
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "I/O".into()))]
    Io {
        path: Option<PathBuf>,
        #[source]
        source: std::io::Error,
    },

    /// The input holds no bytes at all, or no audio frames.
    #[error("{what} is empty")]
    Empty { what: String },

    /// The bytes are not a container or codec that we recognise.
    #[error("unrecognised audio format{}", hint.as_ref().map(|h| format!(" (file extension `{h}`)")).unwrap_or_default())]
    UnrecognizedFormat { hint: Option<String> },

    /// A recognised but unsupported codec or feature.
    #[error("unsupported {what}{}", suggestion.as_ref().map(|s| format!("; {s}")).unwrap_or_default())]
    Unsupported { what: String, suggestion: Option<String> },

    /// The container has no audio track.
    #[error("no audio track in the input")]
    NoAudioTrack,

    /// The stream ends before the length its header declares.
    #[error("truncated input: header declares {expected_frames} frames, only {decoded_frames} could be decoded")]
    Truncated { expected_frames: u64, decoded_frames: u64 },

    /// The stream is malformed beyond what the decoder can skip.
    #[error("corrupt audio data: {detail}")]
    Corrupt { detail: String },

    /// The input exceeds a configured limit; raised before decoding where possible.
    #[error("input too large: {actual} {limit} exceeds the limit of {max} {limit}")]
    TooLarge { limit: Limit, max: f64, actual: f64 },

    /// A sample is NaN or infinite.
    #[error("non-finite sample ({value}) at channel {channel}, frame {frame}")]
    NonFinite { channel: usize, frame: usize, value: f32 },

    /// Buffers whose channel layout does not fit the operation.
    #[error("invalid channel layout: {detail}")]
    InvalidChannels { detail: String },

    // ----- neural models ------------------------------------------------------------------
    /// The ONNX Runtime library could not be found or loaded.
    #[error("ONNX Runtime is not available: {detail}. Tried: {}. Install it with `pip install onnxruntime` (or `onnxruntime-gpu`; the `splitsound` command and the Python package find it there, elsewhere set SPLITSOUND_ORT_PYTHON=1), or point SPLITSOUND_ORT_LIB at libonnxruntime", tried.join("; "))]
    RuntimeUnavailable { tried: Vec<String>, detail: String },

    /// A model package is malformed, or its manifest disagrees with its graph.
    #[error("model {}: {detail}", path.display())]
    Model { path: PathBuf, detail: String },

    /// An execution provider was required but cannot run here.
    #[error("execution provider `{provider}` is not usable here: {detail}")]
    ProviderUnavailable { provider: String, detail: String },

    /// ONNX Runtime failed while running a model.
    #[error("inference failed: {detail}")]
    Inference { detail: String },

    // ----- models by name (the `download` feature) -----------------------------------------
    /// A registry document (or a cached model's entry) is malformed.
    #[error("registry {origin}: {detail}")]
    Registry { origin: String, detail: String },

    /// No registry lists a model of that name.
    #[error("unknown model `{name}`; the registries list: {}", if available.is_empty() { "nothing".to_string() } else { available.join(", ") })]
    UnknownModel { name: String, available: Vec<String> },

    /// The model is listed but not in the local cache (and may not be fetched now).
    #[error("model `{name}` is not in the cache {}; fetch it with `splitsound model pull {name}`{}", cache.display(), if urls.is_empty() { String::new() } else { format!(" (it downloads {})", urls.join(", ")) })]
    ModelNotInstalled { name: String, cache: PathBuf, urls: Vec<String> },

    /// A download failed.
    #[error("download of {url} failed: {detail}")]
    Download { url: String, detail: String },

    /// A downloaded file is not the one the registry describes; nothing was installed.
    #[error("{url}: SHA-256 {actual} does not match the registry's {expected}; nothing was installed")]
    Checksum { url: String, expected: String, actual: String },

    // ----- processing ---------------------------------------------------------------------
    /// The operation was cancelled through a [`crate::CancelToken`].
    #[error("cancelled")]
    Cancelled,

    /// Encoding the output failed.
    #[error("could not encode output: {detail}")]
    Encode { detail: String },

    /// Creating or running the resampler failed.
    #[error("resampler error: {detail}")]
    Resample { detail: String },

    /// A bug in splitsound (a worker thread panicked, say); please report it.
    #[error("internal error in splitsound (please report it): {detail}")]
    Internal { detail: String },
}

/// The kind of an [`Error`]: what a caller can do about it. Every binding maps
/// its exceptions (Python) or its coarse categories from this one function,
/// so an error is the same kind everywhere; [`Error::code`] names the variant.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An argument, name, stem, query, rate or channel layout the call cannot use.
    InvalidArgument,
    /// Reading or writing a file failed.
    File,
    /// The input is audio that cannot be decoded: empty, truncated, corrupt, too large.
    Decode,
    /// Not a container or codec splitsound supports.
    UnsupportedFormat,
    /// A model package or registry is malformed, or running a model failed.
    Model,
    /// A model the registries list is not in the cache.
    ModelNotInstalled,
    /// Fetching a model failed, or what was fetched is not what the registry describes.
    Download,
    /// ONNX Runtime's library could not be loaded.
    RuntimeUnavailable,
    /// Cancelled through a [`crate::CancelToken`].
    Cancelled,
    /// Writing the output failed in the encoder or the resampler.
    Output,
    /// A bug in splitsound.
    Internal,
}

impl ErrorKind {
    /// Its name as serialised (`"invalid_argument"`), for bindings that report kinds as strings.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::File => "file",
            ErrorKind::Decode => "decode",
            ErrorKind::UnsupportedFormat => "unsupported_format",
            ErrorKind::Model => "model",
            ErrorKind::ModelNotInstalled => "model_not_installed",
            ErrorKind::Download => "download",
            ErrorKind::RuntimeUnavailable => "runtime_unavailable",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Output => "output",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: Some(path.into()), source }
    }

    /// Names the file of an I/O error that has none yet.
    pub(crate) fn with_path(self, path: impl Into<PathBuf>) -> Self {
        match self {
            Error::Io { path: None, source } => Error::Io { path: Some(path.into()), source },
            e => e,
        }
    }

    pub(crate) fn invalid(name: &'static str, expected: impl Into<String>, actual: impl ToString) -> Self {
        Error::InvalidArgument { name, expected: expected.into(), actual: actual.to_string() }
    }

    /// `table`'s value for the name `s`, or [`Error::InvalidArgument`] listing
    /// the names accepted: how the CLI and the bindings read option strings.
    pub(crate) fn parse_name<T: Copy>(name: &'static str, s: &str, table: &[(&str, T)]) -> Result<T> {
        table.iter().find(|(n, _)| *n == s).map(|&(_, v)| v).ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            Error::invalid(name, format!("one of {}", names.join(", ")), s)
        })
    }

    /// A short, stable, machine-readable name for the kind of error, used by
    /// the CLI's JSON output and by the language bindings.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::UnsupportedSampleRate { .. } => "unsupported_sample_rate",
            Error::UnknownSeparator { .. } => "unknown_separator",
            Error::UnknownStem { .. } => "unknown_stem",
            Error::UnresolvedQuery { .. } => "unresolved_query",
            Error::Io { .. } => "io",
            Error::Empty { .. } => "empty",
            Error::UnrecognizedFormat { .. } => "unrecognized_format",
            Error::Unsupported { .. } => "unsupported",
            Error::NoAudioTrack => "no_audio_track",
            Error::Truncated { .. } => "truncated",
            Error::Corrupt { .. } => "corrupt",
            Error::TooLarge { .. } => "too_large",
            Error::NonFinite { .. } => "non_finite",
            Error::InvalidChannels { .. } => "invalid_channels",
            Error::RuntimeUnavailable { .. } => "runtime_unavailable",
            Error::Model { .. } => "model",
            Error::ProviderUnavailable { .. } => "provider_unavailable",
            Error::Inference { .. } => "inference",
            Error::Registry { .. } => "registry",
            Error::UnknownModel { .. } => "unknown_model",
            Error::ModelNotInstalled { .. } => "model_not_installed",
            Error::Download { .. } => "download",
            Error::Checksum { .. } => "checksum",
            Error::Cancelled => "cancelled",
            Error::Encode { .. } => "encode",
            Error::Resample { .. } => "resample",
            Error::Internal { .. } => "internal",
        }
    }

    /// What kind of failure this is ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::InvalidArgument { .. }
            | Error::UnsupportedSampleRate { .. }
            | Error::UnknownSeparator { .. }
            | Error::UnknownStem { .. }
            | Error::UnresolvedQuery { .. }
            | Error::NonFinite { .. }
            | Error::InvalidChannels { .. }
            | Error::UnknownModel { .. } => K::InvalidArgument,
            Error::Io { .. } => K::File,
            Error::Empty { .. }
            | Error::NoAudioTrack
            | Error::Truncated { .. }
            | Error::Corrupt { .. }
            | Error::TooLarge { .. } => K::Decode,
            Error::UnrecognizedFormat { .. } | Error::Unsupported { .. } => K::UnsupportedFormat,
            Error::Model { .. }
            | Error::ProviderUnavailable { .. }
            | Error::Inference { .. }
            | Error::Registry { .. } => K::Model,
            Error::ModelNotInstalled { .. } => K::ModelNotInstalled,
            Error::Download { .. } | Error::Checksum { .. } => K::Download,
            Error::RuntimeUnavailable { .. } => K::RuntimeUnavailable,
            Error::Cancelled => K::Cancelled,
            Error::Encode { .. } | Error::Resample { .. } => K::Output,
            Error::Internal { .. } => K::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_group_variants_as_the_bindings_present_them() {
        let io = Error::io("x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(io.kind(), ErrorKind::File);
        assert_eq!(Error::invalid("a", "b", "c").kind(), ErrorKind::InvalidArgument);
        assert_eq!(Error::Truncated { expected_frames: 2, decoded_frames: 1 }.kind(), ErrorKind::Decode);
        assert_eq!(Error::Internal { detail: "x".into() }.code(), "internal");
        assert_eq!(Error::Internal { detail: "x".into() }.kind(), ErrorKind::Internal);
        let miss = Error::ModelNotInstalled { name: "m".into(), cache: "c".into(), urls: vec![] };
        assert_eq!(miss.kind(), ErrorKind::ModelNotInstalled);
        assert_eq!(serde_json::to_value(ErrorKind::ModelNotInstalled).unwrap(), "model_not_installed");
    }
}
