//! The published documents in memory, ready to serve.
//!
//! Every document is stored with its strong ETag, `Last-Modified` and its
//! gzip and brotli encodings, computed once when it is published, never per
//! request. A snapshot is immutable; a publish makes a new one that shares
//! the unchanged resources (and reuses their compressed bytes).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};

use crate::publish::Document;

/// Compression levels: chosen for publish time (a first start renders and
/// compresses every hot document; ~156 of 100 KB with 38 languages) at a
/// ratio close to the maximum: brotli 6 is ~4x faster than 9 and ~3% larger,
/// gzip 6 ~2x faster than 9 and ~1% larger on feeds.
const BROTLI_QUALITY: u32 = 6;
const GZIP_LEVEL: u32 = 6;

/// Below this size compression is not worth a header.
const MIN_COMPRESS: usize = 256;

/// One servable document.
#[derive(Debug)]
pub struct Resource {
    pub content_type: &'static str,
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    /// Hex digest of the identity bytes; ETags are built on it.
    pub digest: String,
    /// `Last-Modified`, as an HTTP date and as Unix seconds.
    pub last_modified: String,
    pub last_modified_secs: i64,
    /// Header values made once, not per request: the strong `ETag` of
    /// each representation (identity, gzip, brotli) and `Last-Modified`.
    pub etags: [HeaderValue; 3],
    pub last_modified_value: HeaderValue,
}

impl Resource {
    /// Bytes held, all encodings together.
    pub fn size(&self) -> usize {
        self.identity.len()
            + self.gzip.as_ref().map_or(0, Bytes::len)
            + self.brotli.as_ref().map_or(0, Bytes::len)
            + self.digest.len()
            + self.last_modified.len()
    }
}

/// Path (below the base URL, e.g. `uk/atom.xml`) -> resource.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    resources: HashMap<String, Arc<Resource>>,
}

impl Snapshot {
    pub fn get(&self, path: &str) -> Option<&Arc<Resource>> {
        self.resources.get(path)
    }

    /// Every document, sorted by path (to rewrite a feeds folder that fell
    /// behind).
    pub fn documents(&self) -> Vec<Document> {
        let mut docs: Vec<Document> = self
            .resources
            .iter()
            .map(|(path, r)| Document {
                path: path.clone(),
                bytes: r.identity.clone(),
                content_type: r.content_type,
                last_modified: Some(r.last_modified_secs),
            })
            .collect();
        docs.sort_by(|a, b| a.path.cmp(&b.path));
        docs
    }

    /// A new snapshot: this one, with `documents` put in and `removed` taken
    /// out, not compressed yet: readers see the change at once (served
    /// uncompressed until [`Snapshot::compress`] and [`Snapshot::compressed`]
    /// put the compressed forms in). `now` (Unix seconds) is the fallback
    /// `Last-Modified`. Returns the paths to compress.
    pub fn updated_uncompressed(
        &self,
        documents: &[Document],
        removed: &[String],
        now: i64,
    ) -> (Snapshot, Vec<String>) {
        let mut resources = self.resources.clone();
        for path in removed {
            resources.remove(path);
        }
        let mut todo = Vec::new();
        for doc in documents {
            let digest = hex(&Sha256::digest(&doc.bytes)[..16]);
            if resources
                .get(&doc.path)
                .is_some_and(|old| old.digest == digest)
            {
                continue;
            }
            // Same bytes (checked above): the compressed forms are kept.
            if doc.bytes.len() >= MIN_COMPRESS {
                todo.push(doc.path.clone());
            }
            let r = resource_with(doc, digest, now, false, false);
            resources.insert(doc.path.clone(), Arc::new(r));
        }
        (Snapshot { resources }, todo)
    }

    /// The compressed forms of `paths` (blocking; off the lock; spread over
    /// the cores, compression being the cost of a publish).
    pub fn compress(&self, paths: &[String]) -> Vec<(String, Arc<Resource>)> {
        let mut docs: Vec<(String, Document, String, i64)> = paths
            .iter()
            .filter_map(|p| self.resources.get(p).map(|r| (p, r)))
            .map(|(p, r)| {
                (
                    p.clone(),
                    Document {
                        path: p.clone(),
                        bytes: r.identity.clone(),
                        content_type: r.content_type,
                        last_modified: Some(r.last_modified_secs),
                    },
                    r.digest.clone(),
                    r.last_modified_secs,
                )
            })
            .collect();
        // Largest first: the cores finish together instead of one waiting
        // on the big feed taken last.
        docs.sort_by_key(|(_, d, ..)| std::cmp::Reverse(d.bytes.len()));
        // Hot documents: large bodies go where `sendfile` can take them.
        let made = crate::parallel::map(&docs, |(_, d, g, t)| {
            resource_with(d, g.clone(), *t, true, true)
        });
        docs.into_iter()
            .zip(made)
            .map(|((p, ..), r)| (p, Arc::new(r)))
            .collect()
    }

    /// This snapshot with compressed resources put in where the bytes are
    /// still the same.
    pub fn compressed(&self, done: &[(String, Arc<Resource>)]) -> Snapshot {
        let mut resources = self.resources.clone();
        for (path, r) in done {
            if resources
                .get(path)
                .is_some_and(|old| old.digest == r.digest)
            {
                resources.insert(path.clone(), r.clone());
            }
        }
        Snapshot { resources }
    }

    /// Both steps at once (the daemon serves between them; tests need not).
    #[cfg(test)]
    pub fn updated(&self, documents: &[Document], removed: &[String], now: i64) -> Snapshot {
        let (next, todo) = self.updated_uncompressed(documents, removed, now);
        let done = next.compress(&todo);
        next.compressed(&done)
    }
}

/// A document made servable: validators computed, encodings compressed.
/// Its bytes stay on the heap (on-demand documents: short-lived, many).
pub fn resource(doc: &Document, digest: String, now: i64) -> Resource {
    resource_with(doc, digest, now, true, false)
}

/// `pack`: put the bodies of a large document in a file mapping, for
/// `sendfile` (hot documents only: one descriptor each).
fn resource_with(doc: &Document, digest: String, now: i64, compress: bool, pack: bool) -> Resource {
    let secs = doc.last_modified.unwrap_or(now).max(0);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    let compress = compress && doc.bytes.len() >= MIN_COMPRESS;
    let last_modified = httpdate::fmt_http_date(time);
    let value = |text: String| {
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    };
    let mut identity = doc.bytes.clone();
    let mut gzip = compress.then(|| gzip(&doc.bytes)).flatten();
    let mut brotli = compress.then(|| brotli(&doc.bytes)).flatten();
    if compress && pack {
        // The finished forms of a large document go where the kernel can
        // send them without a copy (see `sendfile`). The small ones stay on
        // the heap: they are copied to sockets anyway, and so nothing reads
        // the packed file's pages but the kernel.
        let mut slots: Vec<&mut Bytes> = [Some(&mut identity), gzip.as_mut(), brotli.as_mut()]
            .into_iter()
            .flatten()
            .filter(|b| b.len() >= crate::sendfile::MIN_SENDFILE)
            .collect();
        let parts: Vec<&[u8]> = slots.iter().map(|b| &b[..]).collect();
        if let Some(packed) = crate::sendfile::pack(&parts) {
            for (slot, b) in slots.iter_mut().zip(packed) {
                **slot = b;
            }
        }
    }
    Resource {
        etags: [
            value(format!("\"{digest}\"")),
            value(format!("\"{digest}-gz\"")),
            value(format!("\"{digest}-br\"")),
        ],
        last_modified_value: value(last_modified.clone()),
        content_type: doc.content_type,
        gzip,
        brotli,
        identity,
        digest,
        last_modified,
        last_modified_secs: secs,
    }
}

fn gzip(bytes: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(bytes).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < bytes.len()).then(|| Bytes::from(out))
}

fn brotli(bytes: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, 22);
        w.write_all(bytes).ok()?;
    }
    (out.len() < bytes.len()).then(|| Bytes::from(out))
}

/// Lowercase hexadecimal, two digits per byte (content hashes, ETags).
/// Called once per file read: one allocation, not one per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let slow: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), slow);
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    fn doc(path: &str, body: &str) -> Document {
        Document {
            path: path.into(),
            bytes: Bytes::from(body.to_string()),
            content_type: crate::publish::ATOM,
            last_modified: Some(1_700_000_000),
        }
    }

    #[test]
    fn compresses_once_and_round_trips() {
        let body = "<feed>".to_string() + &"entry ".repeat(500) + "</feed>";
        let s = Snapshot::default().updated(&[doc("atom.xml", &body)], &[], 0);
        let r = s.get("atom.xml").unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&r.gzip.as_ref().unwrap()[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let mut out = Vec::new();
        brotli::Decompressor::new(&r.brotli.as_ref().unwrap()[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body.as_bytes());
        assert_eq!(r.last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        // Same bytes again: the very same resource is kept.
        let s2 = s.updated(&[doc("atom.xml", &body)], &[], 0);
        assert!(Arc::ptr_eq(
            s.get("atom.xml").unwrap(),
            s2.get("atom.xml").unwrap()
        ));
        let s3 = s2.updated(&[], &["atom.xml".into()], 0);
        assert!(s3.get("atom.xml").is_none());
    }

    #[test]
    fn only_forms_large_enough_for_sendfile_are_packed() {
        use crate::sendfile::{is_packed, MIN_SENDFILE};
        let body = "<feed>".to_string() + &"entry ".repeat(20_000) + "</feed>";
        let s = Snapshot::default().updated(&[doc("atom.xml", &body)], &[], 0);
        let r = s.get("atom.xml").unwrap();
        assert_eq!(&r.identity[..], body.as_bytes());
        assert!(is_packed(&r.identity));
        for small in [r.gzip.as_ref().unwrap(), r.brotli.as_ref().unwrap()] {
            assert!(small.len() < MIN_SENDFILE, "{}", small.len());
            assert!(!is_packed(small));
        }
    }

    #[test]
    fn every_large_form_is_packed_in_its_own_slot() {
        use crate::sendfile::{is_packed, MIN_SENDFILE};
        // Words drawn from a 4,096-word vocabulary: compresses to ~40 KB.
        let mut x: u32 = 1;
        let body: String = (0..30_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                format!("w{} ", x >> 20)
            })
            .collect();
        let s = Snapshot::default().updated(&[doc("atom.xml", &body)], &[], 0);
        let r = s.get("atom.xml").unwrap();
        let (gz, br) = (r.gzip.as_ref().unwrap(), r.brotli.as_ref().unwrap());
        for form in [&r.identity, gz, br] {
            assert!(form.len() >= MIN_SENDFILE, "{}", form.len());
            assert!(is_packed(form));
        }
        assert_eq!(&r.identity[..], body.as_bytes());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body.as_bytes());
        let mut out = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body.as_bytes());
    }

    #[test]
    fn tiny_bodies_are_not_compressed() {
        let s = Snapshot::default().updated(&[doc("a", "x")], &[], 0);
        assert!(s.get("a").unwrap().gzip.is_none());
    }
}
