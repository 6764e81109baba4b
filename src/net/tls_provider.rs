//! The crypto the https client offers: the parts of rustls's ring provider it needs, and no more.
//!
//! `rustls::crypto::ring::default_provider()` links every algorithm rustls can use with ring:
//! ChaCha20-Poly1305 (ring's assembly for it is ≈ 40 KB of x86_64 text) and the RSA, ECDSA and
//! Ed25519 *signing* keys a TLS server or a client certificate needs. This agent is a client
//! without a client certificate, and the kernel maps every folio of its text that a page fault
//! touches (the whole binary is resident on current kernels, docs/benchmarks.md), so what is
//! linked is RSS. Offered here:
//! - AES-GCM suites only (TLS 1.3: AES-128/256-GCM; TLS 1.2: ECDHE-ECDSA/RSA with AES-GCM).
//!   Every server a fleet uploads to (Go's crypto/tls for VictoriaMetrics, nginx, Caddy, a
//!   cloud load balancer) accepts them; the boards of the design card (RK3588, Jetson) have the
//!   ARMv8 AES instructions, so ChaCha20 would not even be the faster choice there.
//! - Key exchange: X25519, P-256 and P-384, as the default provider.
//! - Certificate signature checks: all of the default provider's (ECDSA P-256/P-384, Ed25519,
//!   RSA PKCS#1 and PSS), since the server's CA decides those, not us.
//! - Randomness from getrandom(2) (rustix), as ring's own `SystemRandom` does.
//! - No private keys: loading one is an error (the agent offers no client certificate).

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use webpki::ring as alg;

/// The provider of every https connection (see the module comment for what it holds).
pub(super) fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &Getrandom,
        key_provider: &NoPrivateKeys,
    }
}

/// rustls's table for the ring provider (rustls 0.23 `crypto/ring/mod.rs`), unchanged: which
/// webpki algorithms check a signature of each TLS signature scheme.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        // TLS 1.2 does not tie an ECDSA scheme to a curve; TLS 1.3 does.
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// getrandom(2), blocking until the kernel's pool is initialised (as ring's `SystemRandom`).
#[derive(Debug)]
struct Getrandom;

impl SecureRandom for Getrandom {
    fn fill(&self, mut buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        while !buf.is_empty() {
            match rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty()) {
                Ok(0) => return Err(GetRandomFailed),
                Ok(n) => buf = &mut buf[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return Err(GetRandomFailed),
            }
        }
        Ok(())
    }
}

/// The agent offers no client certificate, so it loads no private key.
#[derive(Debug)]
struct NoPrivateKeys;

impl KeyProvider for NoPrivateKeys {
    fn load_private_key(
        &self,
        _key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "belabox-metrics offers no TLS client certificate".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_offers_aes_gcm_only_and_loads_no_keys() {
        let p = provider();
        assert!(
            p.cipher_suites
                .iter()
                .all(|s| format!("{:?}", s.suite()).contains("GCM")),
            "{:?}",
            p.cipher_suites
        );
        assert_eq!(p.cipher_suites.len(), 6);
        assert!(
            p.key_provider
                .load_private_key(PrivateKeyDer::Pkcs8(vec![0u8; 8].into()))
                .is_err()
        );
        // rustls accepts it as a whole provider (consistent suites, kx groups, algorithms).
        assert!(
            rustls::ClientConfig::builder_with_provider(Arc::new(p))
                .with_safe_default_protocol_versions()
                .is_ok()
        );
    }

    #[test]
    fn getrandom_fills_the_whole_buffer() {
        let mut a = [0u8; 4096];
        let mut b = [0u8; 4096];
        Getrandom.fill(&mut a).unwrap();
        Getrandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a.iter().filter(|&&x| x == 0).count() < 100);
    }
}
