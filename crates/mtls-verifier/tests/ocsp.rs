//! [`OcspChecker`] against a real `openssl ocsp` responder serving the xtask test PKI, and against
//! small responders playing the faults openssl cannot: one that accepts connections and never
//! answers, one that redirects, one that sends a huge body, and one replaying an old answer.
//!
//! Without `openssl` on PATH the responder tests print why and pass, except with `CI=true`, where
//! a missing `openssl` is a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use xtask::testing::require_program;

use mtls_verifier::{
    ClientVerifier, FailureMode, OcspChecker, OcspError, OcspOptions, Status, VerifierOptions,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use tempfile::TempDir;
use xtask::pki::{self, Credential, Pki, PkiOptions};

const RESPONDER_START_TIMEOUT: Duration = Duration::from_secs(10);
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// A PKI whose certificates name `http://127.0.0.1:<port>` as their OCSP responder.
fn pki_for(port: u16) -> Pki {
    pki::generate(&PkiOptions {
        ocsp_url: format!("http://127.0.0.1:{port}"),
        ..PkiOptions::default()
    })
    .expect("generating the test PKI")
}

fn chain(client: &Credential) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(client.chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("parsing the client chain")
}

fn checker(pki: &Pki, timeout: Duration) -> OcspChecker {
    OcspChecker::new(&OcspOptions {
        ca_bundle_pem: pki.ca.cert_pem.clone().into_bytes(),
        timeout,
        cache_ttl: Duration::from_secs(60),
    })
    .expect("building the checker")
}

/// Reads one HTTP request from `stream`: headers, then as many body bytes as Content-Length
/// says. False if the peer went away first.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf) else {
            return false;
        };
        if n == 0 {
            return false;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return true;
            }
        }
    }
}

/// A one-shot responder on `listener`: reads one HTTP request, answers `status` with `body`.
fn serve_once(
    listener: TcpListener,
    status: &'static str,
    body: Vec<u8>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        if !read_request(&mut stream) {
            return;
        }
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/ocsp-response\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    })
}

/// `openssl ocsp` serving the PKI's `index.txt`, killed on drop.
struct Responder {
    inner: pki::OcspResponder,
    _dir: TempDir,
}

impl Responder {
    /// Starts the responder and waits for the `ACCEPT` line it prints once listening; probing
    /// its port instead would wedge openssl 3.0.
    fn start(pki: &Pki) -> Self {
        Self::start_on(pki, None)
    }

    /// [`Responder::start`], listening on `port` instead of the one in the PKI's OCSP URL.
    fn start_on(pki: &Pki, port: Option<u16>) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        pki.write_to(dir.path()).expect("writing the PKI");
        let mut args = pki
            .ocsp_responder_args(dir.path())
            .expect("responder arguments");
        if let Some(port) = port {
            let at = args
                .iter()
                .position(|arg| arg == "-port")
                .expect("a -port argument");
            args[at + 1] = port.to_string();
        }
        let stderr_path = dir.path().join("responder.stderr");
        let inner = pki::OcspResponder::start(&args, stderr_path, RESPONDER_START_TIMEOUT)
            .expect("the responder starts");
        Self { inner, _dir: dir }
    }

    fn stderr(&self) -> String {
        self.inner.stderr()
    }

    fn stop(&mut self) {
        self.inner.stop();
    }
}

#[tokio::test]
async fn good_client_is_good_and_cached() {
    if !require_program("openssl") {
        return;
    }
    let pki = pki_for(free_port());
    let mut responder = Responder::start(&pki);
    let checker = checker(&pki, CHECK_TIMEOUT);
    let result = checker.check(&chain(&pki.alice)).await;
    assert_eq!(result, Ok(Status::Good), "{}", responder.stderr());
    assert!(FailureMode::FailClosed.allows(&result));

    // Within the TTL the answer comes from the cache: the responder is gone.
    responder.stop();
    assert_eq!(checker.check(&chain(&pki.alice)).await, Ok(Status::Good));
    // bob was never asked about, so his check needs the (stopped) responder.
    assert!(matches!(
        checker.check(&chain(&pki.bob)).await,
        Err(OcspError::Http { .. })
    ));
}

#[tokio::test]
async fn revoked_client_is_revoked_and_then_fails_the_handshake() {
    if !require_program("openssl") {
        return;
    }
    let pki = pki_for(free_port());
    let responder = Responder::start(&pki);
    let checker = checker(&pki, CHECK_TIMEOUT);
    let revoked = chain(&pki.revoked);
    let result = checker.check(&revoked).await;
    assert_eq!(result, Ok(Status::Revoked), "{}", responder.stderr());
    assert!(!FailureMode::FailOpen.allows(&result));

    let verifier = ClientVerifier::new(&VerifierOptions {
        ca_bundle_pem: pki.ca.cert_pem.clone().into_bytes(),
        required: true,
    })
    .expect("building the verifier")
    .with_ocsp_cache(checker.cache());
    assert_eq!(
        verifier
            .verify_client_cert(&revoked[0], &[], UnixTime::now())
            .map(|_| ()),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Revoked
        ))
    );
    let alice = chain(&pki.alice);
    assert!(
        verifier
            .verify_client_cert(&alice[0], &[], UnixTime::now())
            .is_ok()
    );
}

/// A self-signed CA certificate with the test root's exact name but a key of its own.
fn forged_root() -> CertificateDer<'static> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "harper-mqtt test");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "harper-mqtt test root CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("a key");
    params.self_signed(&key).expect("self-signed").der().clone()
}

#[tokio::test]
async fn a_certificate_named_like_the_issuer_in_the_client_chain_is_not_taken_for_it() {
    if !require_program("openssl") {
        return;
    }
    let pki = pki_for(free_port());
    let responder = Responder::start(&pki);
    let checker = checker(&pki, CHECK_TIMEOUT);
    // The revoked client appends a forged "root": the check must still use the real one.
    let mut revoked = chain(&pki.revoked);
    revoked.push(forged_root());
    revoked.insert(1, forged_root());
    assert_eq!(
        checker.check(&revoked).await,
        Ok(Status::Revoked),
        "{}",
        responder.stderr()
    );
}

#[tokio::test]
async fn response_from_a_responder_the_issuer_did_not_authorize_is_rejected() {
    if !require_program("openssl") {
        return;
    }
    // carol's issuer is the intermediate, but openssl signs with the root's delegated
    // responder: RFC 6960 §4.2.2.2 says that answer is not to be trusted.
    let pki = pki_for(free_port());
    let responder = Responder::start(&pki);
    let checker = checker(&pki, CHECK_TIMEOUT);
    let result = checker.check(&chain(&pki.carol)).await;
    assert_eq!(
        result,
        Err(OcspError::BadSignature),
        "{}",
        responder.stderr()
    );
    assert!(!FailureMode::FailClosed.allows(&result));
    assert!(FailureMode::FailOpen.allows(&result));
}

#[tokio::test]
async fn hanging_responder_times_out_and_failure_mode_decides() {
    // Accepts connections and never answers: what openssl cannot be made to do.
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the hanging responder");
    let port = listener.local_addr().expect("local address").port();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let hang = thread::spawn(move || {
        let held = listener.accept();
        // Hold the connection open until the test is done.
        let _ = stop_rx.recv();
        drop(held);
    });

    let pki = pki_for(port);
    let timeout = Duration::from_millis(300);
    let checker = checker(&pki, timeout);
    let started = Instant::now();
    let result = checker.check(&chain(&pki.alice)).await;
    assert!(
        matches!(result, Err(OcspError::Timeout { timeout: t, .. }) if t == timeout),
        "{result:?}"
    );
    assert!(started.elapsed() < timeout + Duration::from_secs(2));
    assert!(!FailureMode::FailClosed.allows(&result));
    assert!(FailureMode::FailOpen.allows(&result));
    // Failures are not cached.
    assert_eq!(checker.cache().get(&pki.alice.cert_der), None);

    drop(stop_tx);
    hang.join().expect("the hanging responder thread");
}

#[tokio::test]
async fn refused_connection_is_an_http_error() {
    let pki = pki_for(free_port());
    let result = checker(&pki, CHECK_TIMEOUT).check(&chain(&pki.alice)).await;
    assert!(matches!(result, Err(OcspError::Http { .. })), "{result:?}");
}

#[tokio::test]
async fn garbage_response_is_malformed() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake responder");
    let pki = pki_for(listener.local_addr().expect("local address").port());
    let served = serve_once(listener, "200 OK", b"this is not DER".to_vec());
    let result = checker(&pki, CHECK_TIMEOUT).check(&chain(&pki.alice)).await;
    assert!(matches!(result, Err(OcspError::Malformed(_))), "{result:?}");
    assert!(FailureMode::FailOpen.allows(&result));
    assert!(!FailureMode::FailClosed.allows(&result));
    served.join().expect("the fake responder thread");
}

#[tokio::test]
async fn http_error_status_is_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake responder");
    let pki = pki_for(listener.local_addr().expect("local address").port());
    let served = serve_once(listener, "500 Internal Server Error", Vec::new());
    let result = checker(&pki, CHECK_TIMEOUT).check(&chain(&pki.alice)).await;
    assert!(
        matches!(result, Err(OcspError::HttpStatus { status: 500, .. })),
        "{result:?}"
    );
    served.join().expect("the fake responder thread");
}

#[tokio::test]
async fn replayed_response_fails_the_nonce_check() {
    if !require_program("openssl") {
        return;
    }
    // A genuine, correctly signed `good` answer to an earlier request (openssl's own client
    // sends a nonce), replayed to our request: only the nonce tells them apart.
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake responder");
    let port = listener.local_addr().expect("local address").port();
    let pki = pki_for(port);
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    pki.write_to(dir.path()).expect("writing the PKI");
    let recorded = dir.path().join("response.der");
    {
        drop(listener);
        let responder = Responder::start(&pki);
        let out = Command::new("openssl")
            .args(["ocsp", "-timeout", "10", "-url"])
            .arg(&pki.ocsp_url)
            .arg("-issuer")
            .arg(dir.path().join("ca.pem"))
            .arg("-cert")
            .arg(dir.path().join("alice.pem"))
            .arg("-CAfile")
            .arg(dir.path().join("ca.pem"))
            .arg("-respout")
            .arg(&recorded)
            .output()
            .expect("running openssl ocsp as a client");
        assert!(
            out.status.success(),
            "{}\nresponder stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            responder.stderr()
        );
    }
    let body = std::fs::read(&recorded).expect("reading the recorded response");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebinding the responder port");
    let served = serve_once(listener, "200 OK", body);
    let result = checker(&pki, CHECK_TIMEOUT).check(&chain(&pki.alice)).await;
    assert_eq!(result, Err(OcspError::NonceMismatch));
    served.join().expect("the fake responder thread");
}

#[tokio::test]
async fn simultaneous_checks_of_one_certificate_make_one_request() {
    if !require_program("openssl") {
        return;
    }
    // The certificates name a counting proxy in front of openssl: one connection per request,
    // since the checker keeps no idle connections.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the proxy");
    let pki = pki_for(proxy.local_addr().expect("local address").port());
    let openssl_port = free_port();
    let responder = Responder::start_on(&pki, Some(openssl_port));
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let proxying = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = proxy.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", openssl_port))
                .await
                .expect("connecting to openssl");
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let checker = checker(&pki, CHECK_TIMEOUT);
    let alice = chain(&pki.alice);
    let (first, second) = tokio::join!(checker.check(&alice), checker.check(&alice));
    assert_eq!(first, Ok(Status::Good), "{}", responder.stderr());
    assert_eq!(second, Ok(Status::Good));
    assert_eq!(checker.check(&alice).await, Ok(Status::Good));
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    // Another certificate is another request.
    assert_eq!(checker.check(&chain(&pki.bob)).await, Ok(Status::Good));
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    proxying.abort();
}

#[tokio::test]
async fn a_replayed_good_answer_from_before_the_revocation_lets_nobody_in() {
    if !require_program("openssl") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the replaying responder");
    let pki = pki_for(listener.local_addr().expect("local address").port());
    let replayed = pki
        .ocsp_answer_from_before_revocation("revoked", Duration::from_secs(60 * 60))
        .expect("an answer from an hour ago");
    let served = serve_once(listener, "200 OK", replayed);
    let checker = checker(&pki, CHECK_TIMEOUT);
    let result = checker.check(&chain(&pki.revoked)).await;
    assert_eq!(result, Err(OcspError::StaleWithoutNonce));
    assert!(!FailureMode::FailClosed.allows(&result));
    assert_eq!(checker.cache().get(&pki.revoked.cert_der), None);
    served.join().expect("the replaying responder thread");
}

#[tokio::test]
async fn an_answer_without_nonce_is_cached_only_while_it_is_fresh() {
    if !require_program("openssl") {
        return;
    }
    // thisUpdate 4 min 57 s ago and no nextUpdate: fresh for 3 more seconds, far less than the
    // cache's 60 s TTL.
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the responder");
    let pki = pki_for(listener.local_addr().expect("local address").port());
    let answer = pki
        .ocsp_answer_from_before_revocation("alice", Duration::from_secs(5 * 60 - 3))
        .expect("an answer from almost five minutes ago");
    let served = serve_once(listener, "200 OK", answer);
    let checker = checker(&pki, CHECK_TIMEOUT);
    let started = Instant::now();
    assert_eq!(checker.check(&chain(&pki.alice)).await, Ok(Status::Good));
    assert_eq!(checker.cache().get(&pki.alice.cert_der), Some(Status::Good));
    served.join().expect("the responder thread");
    // The clock passing the answer's freshness is what is tested, so the test waits for it.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(started.elapsed())).await;
    assert_eq!(checker.cache().get(&pki.alice.cert_der), None);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_a_failure() {
    // The redirect's target counts the connections it is offered.
    let target = TcpListener::bind("127.0.0.1:0").expect("binding the redirect target");
    target
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let location = format!(
        "http://127.0.0.1:{}/",
        target.local_addr().expect("local address").port()
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the redirecting responder");
    let pki = pki_for(listener.local_addr().expect("local address").port());
    let redirecting = thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        if read_request(&mut stream) {
            let head = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
        }
    });
    let result = checker(&pki, Duration::from_secs(2))
        .check(&chain(&pki.alice))
        .await;
    assert!(
        matches!(&result, Err(OcspError::Redirect { status: 307, location, .. }) if location.starts_with("http://127.0.0.1:")),
        "{result:?}"
    );
    assert!(!FailureMode::FailClosed.allows(&result));
    assert!(FailureMode::FailOpen.allows(&result));
    redirecting
        .join()
        .expect("the redirecting responder thread");
    assert!(
        matches!(target.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the checker followed the redirect"
    );
}

/// 256 MiB, what a hostile responder might send.
const HUGE_BODY: u64 = 256 * 1024 * 1024;

/// A responder that answers `200 OK` with [`HUGE_BODY`] zero bytes (with or without a
/// Content-Length), and reports how many bytes it got to write before the client hung up.
fn huge_responder(listener: TcpListener, declare_length: bool) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return 0;
        };
        if !read_request(&mut stream) {
            return 0;
        }
        let length = if declare_length {
            format!("content-length: {HUGE_BODY}\r\n")
        } else {
            String::new()
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/ocsp-response\r\n{length}connection: close\r\n\r\n"
        );
        if stream.write_all(head.as_bytes()).is_err() {
            return 0;
        }
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0;
        while written < HUGE_BODY {
            match stream.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        written
    })
}

async fn assert_huge_body_is_refused(declare_length: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the responder");
    let pki = pki_for(listener.local_addr().expect("local address").port());
    let responder = huge_responder(listener, declare_length);
    let checker = checker(&pki, Duration::from_secs(30));
    let started = Instant::now();
    let result = checker.check(&chain(&pki.alice)).await;
    let elapsed = started.elapsed();
    drop(checker);
    // Joined off the runtime: the HTTP client's connection task must run to hang up.
    let written = tokio::task::spawn_blocking(move || responder.join())
        .await
        .expect("joining")
        .expect("the responder thread");
    // The client hung up after at most 64 KiB: what the responder got to write is what the
    // sockets' buffers held, nowhere near the whole body.
    assert!(
        written < 32 * 1024 * 1024,
        "the responder wrote {written} bytes before the client gave up ({result:?})"
    );
    assert!(
        matches!(
            result,
            Err(OcspError::ResponseTooLarge { limit: 65_536, .. })
        ),
        "{result:?}"
    );
    assert!(!FailureMode::FailClosed.allows(&result));
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn a_huge_response_with_its_length_declared_is_refused_unread() {
    assert_huge_body_is_refused(true).await;
}

#[tokio::test]
async fn a_huge_response_streamed_without_length_is_refused_after_64_kib() {
    assert_huge_body_is_refused(false).await;
}
