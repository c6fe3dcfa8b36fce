//! The libp2p TLS 1.3 handshake (`/tls/1.0.0`) with cipher suites ordered
//! for this machine's hardware.
//!
//! `libp2p-tls` implements the same handshake but always prefers
//! ChaCha20-Poly1305. On a CPU with AES instructions AES-GCM is four to six
//! times cheaper: measured on the 2-core benchmark VM, ChaCha20-Poly1305
//! seals 1.8 GB/s and AES-128-GCM 8.9 GB/s per core. Every byte uploaded
//! crosses five encrypted connections (client to the first holder, then to
//! the other four), so the cipher alone was a fifth of an upload's CPU.
//!
//! This module keeps `libp2p-tls`'s certificate code (the self-signed
//! certificate carrying the libp2p key, parsed and verified by
//! [`libp2p::tls::certificate`]) and builds its own rustls configurations
//! around it:
//! - TLS 1.3 only, ALPN `libp2p`, no SNI, no session resumption (every
//!   connection proves both identities afresh);
//! - both sides present exactly one certificate, which must parse as a
//!   valid libp2p certificate; the peer id is the key inside it, and the
//!   swarm refuses a dialled peer whose id differs;
//! - AES-GCM first where the CPU has AES and carry-less multiply
//!   instructions, ChaCha20-Poly1305 first where it has not; a server
//!   without them insists on its own order, so the slower side decides.
//!
//! It speaks the libp2p TLS spec, so it interoperates with other libp2p
//! TLS peers; nodes offer it before Noise, which stays available.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::PeerId;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, CommonState, DigitallySignedStruct, DistinguishedName, OtherError,
    SignatureScheme, SupportedCipherSuite,
};

/// The protocol name negotiated by multistream-select.
pub const PROTOCOL: &str = "/tls/1.0.0";
const ALPN: &[u8] = b"libp2p";

/// Why a TLS configuration or handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate for our key could not be made.
    #[error("cannot make the TLS certificate: {0}")]
    Certificate(#[from] certificate::GenError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The handshake failed (including a peer certificate that did not verify).
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The handshake finished without exactly one valid peer certificate.
    #[error("TLS peer certificate: {0}")]
    PeerCertificate(String),
}

/// The security upgrade: one per swarm, cloned per connection (cheaply).
#[derive(Clone)]
pub struct Tls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

/// The connection once secured.
///
/// Reads are not buffered below TLS: rustls reads at most a record per
/// call, but a 64 KiB buffer under it, measured on a 1 GiB upload, cut the
/// nodes' `recvfrom` calls from 413 000 to 118 000 and saved no CPU (the
/// extra copy costs what the calls did).
pub type TlsStream<C> = futures_rustls::TlsStream<C>;

/// Plaintext rustls encrypts ahead of the socket, per connection: one
/// write can carry this much in a single `writev` (16 records) instead of
/// rustls's default 64 KiB. It is also what a connection can hold
/// encrypted and unsent when the peer reads slowly.
pub const WRITE_BUFFER: usize = 256 * 1024;

/// Whether this CPU runs AES-GCM in hardware.
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// TLS 1.3 suites, the fastest on this CPU first.
fn cipher_suites(aes: bool) -> Vec<SupportedCipherSuite> {
    use aws_lc_rs::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    if aes {
        vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ]
    } else {
        vec![
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
        ]
    }
}

impl Tls {
    /// Configurations presenting a certificate for `keypair`.
    pub fn new(keypair: &Keypair) -> Result<Self, TlsError> {
        let aes = aes_in_hardware();
        let provider = Arc::new(CryptoProvider {
            cipher_suites: cipher_suites(aes),
            ..aws_lc_rs::default_provider()
        });
        let (cert, key) = certificate::generate(keypair)?;
        // Not `with_single_cert`: rustls's own certificate parser refuses
        // the critical libp2p extension, so the pair is packaged directly
        // (`certificate::generate` made the key for this very certificate).
        let signing_key = provider.key_provider.load_private_key(key)?;
        let ours = Arc::new(SingleCertAndKey::from(CertifiedKey::new(
            vec![cert],
            signing_key,
        )));
        let versions = &[&rustls::version::TLS13];

        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pVerifier))
            .with_client_cert_resolver(ours.clone());
        client.alpn_protocols = vec![ALPN.to_vec()];
        // Required, not tidiness: every peer is dialled under the same
        // server name, so a session cache would be shared by all of them,
        // and a resumed handshake reports the cached certificate without
        // checking it again.
        client.resumption = rustls::client::Resumption::disabled();

        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(Arc::new(Libp2pVerifier))
            .with_cert_resolver(ours);
        server.alpn_protocols = vec![ALPN.to_vec()];
        server.ignore_client_order = !aes;
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});

        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The peer id in the one certificate the handshake accepted.
fn peer_of(state: &CommonState) -> Result<PeerId, TlsError> {
    match state.peer_certificates() {
        Some([cert]) => certificate::parse(cert)
            .map(|c| c.peer_id())
            .map_err(|e| TlsError::PeerCertificate(e.to_string())),
        _ => Err(TlsError::PeerCertificate(
            "expected exactly one certificate".into(),
        )),
    }
}

impl UpgradeInfo for Tls {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(PROTOCOL)
    }
}

impl<C> InboundConnectionUpgrade<C> for Tls
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, TlsStream<C>);
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            let mut stream = futures_rustls::TlsAcceptor::from(self.server)
                .accept(socket)
                .await
                .map_err(TlsError::Handshake)?;
            stream.get_mut().1.set_buffer_limit(Some(WRITE_BUFFER));
            let peer = peer_of(stream.get_ref().1)?;
            Ok((peer, stream.into()))
        }
        .boxed()
    }
}

impl<C> OutboundConnectionUpgrade<C> for Tls
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, TlsStream<C>);
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            // The spec forbids SNI: an IP address as the name sends none.
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
            let mut stream = futures_rustls::TlsConnector::from(self.client)
                .connect(name, socket)
                .await
                .map_err(TlsError::Handshake)?;
            stream.get_mut().1.set_buffer_limit(Some(WRITE_BUFFER));
            let peer = peer_of(stream.get_ref().1)?;
            Ok((peer, stream.into()))
        }
        .boxed()
    }
}

/// Accepts exactly one certificate that is a valid libp2p certificate
/// (self-signed, in date, its libp2p extension signed by the key it
/// names), and handshake signatures made with that certificate's key.
#[derive(Debug)]
struct Libp2pVerifier;

fn bad_certificate(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl Libp2pVerifier {
    fn verify_chain(
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "libp2p TLS takes exactly one certificate".into(),
            ));
        }
        certificate::parse(end_entity).map_err(bad_certificate)?;
        Ok(())
    }

    fn verify_signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)
            .map_err(bad_certificate)?
            .verify_signature(dss.scheme, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    /// The schemes libp2p certificates are signed with, preferred first.
    fn schemes() -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]
    }
}

/// TLS 1.2 is never offered; a TLS 1.2 signature is refused, not trusted.
fn no_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("libp2p TLS is TLS 1.3 only".into()))
}

impl ServerCertVerifier for Libp2pVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::verify_chain(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

impl ClientCertVerifier for Libp2pVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::verify_chain(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};
    use libp2p::tcp::tokio::TcpStream;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (TcpStream(a.unwrap()), TcpStream(b.unwrap().0))
    }

    #[tokio::test]
    async fn both_sides_learn_each_others_id_and_bytes_flow() {
        let (dialer, listener) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (a, b) = pair().await;
        let (out, inb) = tokio::join!(
            Tls::new(&dialer).unwrap().upgrade_outbound(a, PROTOCOL),
            Tls::new(&listener).unwrap().upgrade_inbound(b, PROTOCOL),
        );
        let (seen_by_dialer, mut a) = out.unwrap();
        let (seen_by_listener, mut b) = inb.unwrap();
        assert_eq!(seen_by_dialer, listener.public().to_peer_id());
        assert_eq!(seen_by_listener, dialer.public().to_peer_id());
        let suite = match &a {
            TlsStream::Client(s) => s.get_ref().1.negotiated_cipher_suite(),
            TlsStream::Server(_) => None,
        };
        let expected = if aes_in_hardware() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        } else {
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        };
        assert_eq!(suite.map(|s| s.suite()), Some(expected));

        let sent: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let (w, r) = tokio::join!(
            async {
                a.write_all(&sent).await?;
                a.close().await
            },
            async {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.map(|_| got)
            }
        );
        w.unwrap();
        assert_eq!(r.unwrap(), sent);
    }

    #[tokio::test]
    async fn a_plain_tls_client_without_a_libp2p_certificate_is_refused() {
        // A client that skips client authentication entirely: the server
        // must refuse it rather than hand out an unauthenticated peer.
        let provider = Arc::new(aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pVerifier))
            .with_no_client_auth();
        let (a, b) = pair().await;
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
        let server = Tls::new(&Keypair::generate_ed25519()).unwrap();
        let (out, inb) = tokio::join!(
            futures_rustls::TlsConnector::from(Arc::new(client)).connect(name, a),
            server.upgrade_inbound(b, PROTOCOL),
        );
        assert!(
            inb.is_err(),
            "server accepted a client without a certificate"
        );
        // The client may or may not notice before the server hangs up.
        drop(out);
    }
}
