//! The body format of a chunk (`remote.format`): how samples become the bytes of one POST and
//! which headers describe them. One enum, so that the task keeps one code path for both.

use super::chunk::{AsPoint, EncodeError, JsonlEncoder, SeriesMeta};
use super::gzip::Gzip;
use super::remote_write::{RemoteWriteEncoder, Snappy};
use crate::config::UploadFormat;

/// An encoder and its compressor, both reused across chunks.
#[derive(Debug)]
pub enum Codec {
    /// VictoriaMetrics JSON lines, gzip level 1.
    VmImport { encoder: JsonlEncoder, gzip: Gzip },
    /// Prometheus remote_write 1.0: protobuf, snappy block.
    RemoteWrite {
        encoder: RemoteWriteEncoder,
        snappy: Snappy,
    },
}

const VM_IMPORT_HEADERS: &[(&str, &[u8])] = &[
    ("Content-Type", b"application/stream+json"),
    ("Content-Encoding", b"gzip"),
];

/// What the remote_write 1.0 specification requires of every request.
const REMOTE_WRITE_HEADERS: &[(&str, &[u8])] = &[
    ("Content-Type", b"application/x-protobuf"),
    ("Content-Encoding", b"snappy"),
    ("X-Prometheus-Remote-Write-Version", b"0.1.0"),
];

impl Codec {
    pub fn new(format: UploadFormat) -> Codec {
        match format {
            UploadFormat::VmImport => Codec::VmImport {
                encoder: JsonlEncoder::new(),
                gzip: Gzip::new(),
            },
            UploadFormat::RemoteWrite => Codec::RemoteWrite {
                encoder: RemoteWriteEncoder::new(),
                snappy: Snappy::new(),
            },
        }
    }

    pub fn format(&self) -> UploadFormat {
        match self {
            Codec::VmImport { .. } => UploadFormat::VmImport,
            Codec::RemoteWrite { .. } => UploadFormat::RemoteWrite,
        }
    }

    /// Replaces `body` with the compressed request body of `samples`; `raw` is scratch for the
    /// uncompressed form. Both keep their capacity across calls.
    pub fn encode<'m, T: AsPoint>(
        &mut self,
        samples: &[T],
        series: impl Fn(u32) -> Option<&'m SeriesMeta>,
        raw: &mut Vec<u8>,
        body: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        match self {
            Codec::VmImport { encoder, gzip } => {
                encoder.encode(samples, series, raw)?;
                gzip.compress(raw, body);
            }
            Codec::RemoteWrite { encoder, snappy } => {
                encoder.encode(samples, series, raw)?;
                snappy.compress(raw, body);
            }
        }
        Ok(())
    }

    /// Frees the compressor state that is worth freeing between upload rounds (gzip's ~300 KiB;
    /// snappy's encoder is a few KiB and stays). The next [`Codec::encode`] allocates it again.
    pub fn release(&mut self) {
        if let Codec::VmImport { gzip, .. } = self {
            gzip.release();
        }
    }

    /// The content headers of every request of this format.
    pub fn headers(&self) -> &'static [(&'static str, &'static [u8])] {
        match self {
            Codec::VmImport { .. } => VM_IMPORT_HEADERS,
            Codec::RemoteWrite { .. } => REMOTE_WRITE_HEADERS,
        }
    }
}
