//! Receivers that respond in strange or hostile ways: raw TCP servers on 127.0.0.1 that split,
//! reset, pad or misframe their responses. The tests check that each exchange ends within
//! [`BOUND`] without a panic, that no broken response counts as complete, and that no request
//! reads the bytes of an earlier response.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const LIMIT: usize = 4096;
/// Maximum time of any exchange in these tests, far above what a valid exchange needs.
const BOUND: Duration = Duration::from_secs(5);

/// Accepts connections on 127.0.0.1 and hands each to `handler` with its index, from 0.
async fn raw_server<F, Fut>(handler: F) -> (url::Url, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, handler)
}

/// Like [`raw_server`], with a receive buffer of a few KiB on each accepted connection, so a
/// large request fills it as it would a receiver across a network that does not read.
async fn small_window_server<F, Fut>(handler: F) -> (url::Url, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    serve_on(socket.listen(16).unwrap(), handler)
}

fn serve_on<F, Fut>(listener: TcpListener, handler: F) -> (url::Url, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let index = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(handler(stream, index));
        }
    });
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap();
    (url, accepted)
}

/// Reads one request with a `content-length` body. Returns its body, or `None` at the end of
/// the connection.
pub(super) async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut chunk = vec![0_u8; 64 * 1024];
    loop {
        if let Some(end) = data.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let read = stream.read(&mut chunk).await.ok()?;
                if read == 0 {
                    return None;
                }
                data.extend_from_slice(&chunk[..read]);
            }
            return Some(data[end + 4..end + 4 + length].to_vec());
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..read]);
    }
}

/// Reads only the request head, leaving the body unread.
async fn read_head_only(stream: &mut TcpStream) -> Option<()> {
    let mut data = Vec::new();
    let mut byte = [0_u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        data.push(byte[0]);
    }
    Some(())
}

/// Serves each request with the response at its index, counted over all connections, and
/// closes the connection once `raw_responses` is used up.
async fn serve_each(raw_responses: Vec<Vec<u8>>) -> (url::Url, Arc<AtomicUsize>) {
    let raw_responses = Arc::new(raw_responses);
    let requests = Arc::new(AtomicUsize::new(0));
    raw_server(move |mut stream, _| {
        let raw_responses = Arc::clone(&raw_responses);
        let requests = Arc::clone(&requests);
        async move {
            while read_request(&mut stream).await.is_some() {
                let index = requests.fetch_add(1, Ordering::SeqCst);
                let Some(raw_response) = raw_responses.get(index) else {
                    return;
                };
                if stream.write_all(raw_response).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// Closes the stream with a reset instead of a clean close: a zero linger time, then a drop.
fn reset(stream: TcpStream) {
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

fn client() -> Http1Client {
    Http1Client::new(
        Duration::from_secs(2),
        Arc::new(|ip: IpAddr| ip.is_loopback()),
    )
}

/// Posts a small request on a pooled connection, failing the test past [`BOUND`].
async fn post(client: &Http1Client, url: &url::Url) -> Result<Response, ExchangeError> {
    post_body(client, url, b"{}").await
}

/// Posts again on `client` and checks that the response is a 200 with `body`, read in full.
async fn assert_next_ok(client: &Http1Client, url: &url::Url, body: &[u8]) {
    let next = post(client, url).await.unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(next.excerpt, body);
    assert!(next.body_error.is_none(), "{:?}", next.body_error);
}

async fn post_body(
    client: &Http1Client,
    url: &url::Url,
    body: &[u8],
) -> Result<Response, ExchangeError> {
    let request = Request {
        url,
        headers: &[("content-type", "application/json")],
        body,
    };
    tokio::time::timeout(BOUND, client.post(&request, false, LIMIT))
        .await
        .expect("the exchange ran past its bound")
}

/// Returns the error of an exchange as text, whether the head or the body failed.
fn failure(outcome: Result<Response, ExchangeError>) -> Option<String> {
    match outcome {
        Ok(response) => response.body_error.map(|error| error.to_string()),
        Err(error) => Some(error.to_string()),
    }
}

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn one_byte_writes_are_read_whole() {
    let raw_response = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nretry-after: 3\r\n\r\nfirst";
    let (url, accepted) = raw_server(move |mut stream, _| async move {
        while read_request(&mut stream).await.is_some() {
            for byte in raw_response {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                stream.flush().await.unwrap();
            }
        }
    })
    .await;
    let client = client();
    for _ in 0..2 {
        let response = post(&client, &url).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.excerpt, b"first");
        assert_eq!(response.retry_after.as_deref(), Some("3"));
        assert!(response.body_error.is_none());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn head_over_64_kib_is_refused() {
    let mut raw_response = b"HTTP/1.1 200 OK\r\n".to_vec();
    for index in 0..10 {
        raw_response
            .extend_from_slice(format!("x-pad-{index}: {}\r\n", "p".repeat(7000)).as_bytes());
    }
    raw_response.extend_from_slice(b"content-length: 0\r\n\r\n");
    let (url, _) = serve_each(vec![raw_response]).await;
    let error = failure(post(&client(), &url).await).unwrap();
    assert!(error.contains("longer than 64 KiB"), "{error}");
}

#[tokio::test]
async fn header_count_limit_is_100() {
    let with_headers = |count: usize| {
        let mut raw_response = b"HTTP/1.1 200 OK\r\n".to_vec();
        for index in 0..count - 1 {
            raw_response.extend_from_slice(format!("x-h{index}: v\r\n").as_bytes());
        }
        raw_response.extend_from_slice(b"content-length: 2\r\n\r\nok");
        raw_response
    };
    let (url, _) = serve_each(vec![with_headers(100), with_headers(101)]).await;
    let client = client();
    let response = post(&client, &url).await.unwrap();
    assert_eq!(
        (response.status, response.excerpt.as_slice()),
        (200, &b"ok"[..])
    );
    let error = failure(post(&client, &url).await).unwrap();
    assert!(error.contains("too many headers"), "{error}");
}

#[tokio::test]
async fn status_line_without_reason_phrase() {
    let (url, _) = serve_each(vec![
        b"HTTP/1.1 200\r\ncontent-length: 1\r\n\r\na".to_vec(),
        b"HTTP/1.1 503 \r\ncontent-length: 1\r\n\r\nb".to_vec(),
    ])
    .await;
    let client = client();
    let first = post(&client, &url).await.unwrap();
    assert_eq!((first.status, first.excerpt.as_slice()), (200, &b"a"[..]));
    let second = post(&client, &url).await.unwrap();
    assert_eq!((second.status, second.excerpt.as_slice()), (503, &b"b"[..]));
}

#[tokio::test]
async fn unframed_body_ends_at_close() {
    let (url, accepted) = raw_server(|mut stream, _| async move {
        if read_request(&mut stream).await.is_some() {
            let _ = stream.write_all(b"HTTP/1.1 200\r\n\r\n").await;
        }
    })
    .await;
    let client = client();
    for _ in 0..2 {
        let response = post(&client, &url).await.unwrap();
        assert_eq!(response.status, 200);
        assert!(response.excerpt.is_empty());
        assert!(response.body_error.is_none());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn content_length_must_be_digits_only() {
    let client = client();
    for value in ["+2", "-2", "2 2", "0x2", "２"] {
        let raw_response =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {value}\r\n\r\nok").into_bytes();
        let (url, _) = serve_each(vec![raw_response]).await;
        let error = failure(post(&client, &url).await);
        assert!(
            error
                .as_deref()
                .is_some_and(|error| error.contains("not a number")),
            "content-length {value:?}: {error:?}"
        );
    }
    // Whitespace around the value is not part of it.
    let (url, _) = serve_each(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length:   2  \r\n\r\nok".to_vec()
    ])
    .await;
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"ok");
}

#[tokio::test]
async fn huge_content_length_cut_short() {
    let body = "h".repeat(LIMIT + 10);
    let raw_response = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        u64::MAX
    );
    let raw_response: &'static [u8] = Box::leak(raw_response.into_bytes().into_boxed_slice());
    let (url, accepted) = raw_server(move |mut stream, _| async move {
        while read_request(&mut stream).await.is_some() {
            if stream.write_all(raw_response).await.is_err() {
                return;
            }
        }
    })
    .await;
    let client = client();
    for _ in 0..2 {
        let response = post(&client, &url).await.unwrap();
        assert_eq!(response.excerpt.len(), LIMIT);
        assert!(response.body_error.is_none());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // One past u64::MAX is not a number at all.
    let raw_response = b"HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551616\r\n\r\n".to_vec();
    let (url, _) = serve_each(vec![raw_response]).await;
    let error = failure(post(&client, &url).await).unwrap();
    assert!(error.contains("not a number"), "{error}");
}

#[tokio::test]
async fn transfer_codings_chunked_last_or_not() {
    let client = client();
    // With chunked last, the body is chunked. Its bytes would be compressed, but here they are not.
    let (url, accepted) = serve_each(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
        ok_response("next"),
    ])
    .await;
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"ok");
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"next");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // With chunked not last, the body ends at the close and the connection is not reused.
    let (url, accepted) = raw_server(|mut stream, _| async move {
        if read_request(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                .await;
        }
    })
    .await;
    for _ in 0..2 {
        let response = post(&client, &url).await.unwrap();
        assert_eq!(response.excerpt, b"2\r\nok\r\n0\r\n\r\n");
        assert!(response.body_error.is_none());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // With both framings, transfer-encoding wins and the connection is not reused.
    let (url, accepted) = serve_each(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            .to_vec(),
        ok_response("next"),
    ])
    .await;
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"ok");
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"next");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn chunk_sizes_case_and_zeros() {
    let long_zeros = "0".repeat(200);
    let body = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{long_zeros}A\r\n0123456789\r\n0000b\r\nabcdefghijk\r\n00\r\n\r\n"
    );
    let (url, accepted) = serve_each(vec![body.into_bytes(), ok_response("next")]).await;
    let client = client();
    assert_eq!(
        post(&client, &url).await.unwrap().excerpt,
        b"0123456789abcdefghijk"
    );
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"next");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chunk_sizes_not_hex_rejected() {
    let client = client();
    for size in ["+2", "-2", "1ffffffffffffffff", "", " ", "0x2", "2 2"] {
        let raw_response = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{size}\r\nok\r\n0\r\n\r\n"
        );
        let (url, _) = serve_each(vec![raw_response.into_bytes()]).await;
        let error = failure(post(&client, &url).await);
        assert!(
            error
                .as_deref()
                .is_some_and(|error| error.contains("chunk size")),
            "chunk size {size:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn chunk_extension_over_8_kib_is_refused() {
    let raw_response = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;ext={}\r\nok\r\n0\r\n\r\n",
        "e".repeat(9000)
    );
    let (url, _) = serve_each(vec![raw_response.into_bytes()]).await;
    let error = failure(post(&client(), &url).await).unwrap();
    assert!(error.contains("longer than 8 KiB"), "{error}");
}

#[tokio::test]
async fn trailers_are_read_and_the_connection_reused() {
    let (url, accepted) = serve_each(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\n"
            .to_vec(),
        ok_response("next"),
    ])
    .await;
    let client = client();
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"ok");
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"next");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pipelined_junk_not_read_next() {
    // Junk in the same write as the response.
    let mut first = ok_response("one");
    first.extend_from_slice(b"HTTP/1.1 500 Junk\r\ncontent-length: 4\r\n\r\njunk");
    let (url, accepted) = serve_each(vec![first, ok_response("two")]).await;
    let client = client();
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"one");
    assert_next_ok(&client, &url, b"two").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // Junk a moment after the response, while the connection is idle.
    let (url, accepted) = raw_server(|mut stream, index| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        let _ = stream.write_all(&ok_response(&format!("c{index}"))).await;
        if index == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = stream
                .write_all(b"HTTP/1.1 500 Junk\r\ncontent-length: 4\r\n\r\njunk")
                .await;
        }
        let _ = read_request(&mut stream).await;
    })
    .await;
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"c0");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_next_ok(&client, &url, b"c1").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn many_interim_responses_are_skipped() {
    let mut raw_response =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nx: y\r\n\r\n".repeat(8);
    raw_response.extend_from_slice(&ok_response("final"));
    let (url, accepted) = serve_each(vec![raw_response, ok_response("next")]).await;
    let client = client();
    let response = post(&client, &url).await.unwrap();
    assert_eq!(
        (response.status, response.excerpt.as_slice()),
        (200, &b"final"[..])
    );
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"next");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// Streams `prefix` and then `repeated` without end, in writes whose size is not a multiple
/// of it, until the client goes away.
async fn endless_server(prefix: &'static [u8], repeated: &'static [u8]) -> url::Url {
    let (url, _) = raw_server(move |mut stream, _| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        if stream.write_all(prefix).await.is_err() {
            return;
        }
        let block = repeated.repeat(64 * 1024 / repeated.len() + 1);
        let started = Instant::now();
        // Bounded, as every loop here is, to 20 s of writes.
        while started.elapsed() < Duration::from_secs(20) {
            if stream.write_all(&block[..block.len() - 7]).await.is_err() {
                return;
            }
        }
    })
    .await;
    url
}

/// Runs `receive` on a fresh connection to `url` for at most `run`. Returns the error that ended
/// it, if one did, and how many bytes its buffer holds.
async fn receive_endless(url: &url::Url, run: Duration) -> (Option<String>, usize) {
    let address = format!("127.0.0.1:{}", url.port().unwrap());
    let mut connection = Connection::new(TcpStream::connect(address).await.unwrap());
    let request = Request {
        url,
        headers: &[],
        body: b"",
    };
    connection
        .send(&request_bytes(&request, "127.0.0.1", url.port()))
        .await
        .unwrap();
    let error = match tokio::time::timeout(run, connection.receive(LIMIT)).await {
        Ok(Ok((response, _))) => {
            let error = response.body_error.map(|error| error.to_string());
            assert!(error.is_some(), "an endless response ended well");
            error
        }
        Ok(Err(error)) => Some(error.to_string()),
        Err(_elapsed) => None,
    };
    (error, connection.buffer.capacity())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_interim_responses_fail_early() {
    let url = endless_server(b"", b"HTTP/1.1 100 Continue\r\n\r\n").await;
    let (error, buffered) = receive_endless(&url, Duration::from_secs(1)).await;
    let error = error.unwrap_or_default();
    assert!(error.contains("interim"), "{error:?}");
    assert!(buffered < 1024 * 1024, "buffer grew to {buffered} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_trailers_fail_early() {
    let url = endless_server(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
        b"x-trailer: 1\r\n",
    )
    .await;
    let (error, buffered) = receive_endless(&url, Duration::from_secs(1)).await;
    let error = error.unwrap_or_default();
    assert!(error.contains("trailers are longer"), "{error:?}");
    assert!(buffered < 1024 * 1024, "buffer grew to {buffered} bytes");
}

#[tokio::test]
async fn switching_protocols_is_final_and_not_reused() {
    let (url, accepted) = serve_each(vec![
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n\x81\x05hello"
            .to_vec(),
        ok_response("next"),
    ])
    .await;
    let client = client();
    let response = post(&client, &url).await.unwrap();
    assert_eq!(response.status, 101);
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"next");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_content_body_not_leaked() {
    let (url, accepted) = serve_each(vec![
        b"HTTP/1.1 204 No Content\r\ncontent-length: 4\r\n\r\nleak".to_vec(),
        ok_response("next"),
    ])
    .await;
    let client = client();
    let response = post(&client, &url).await.unwrap();
    assert_eq!(response.status, 204);
    assert!(response.excerpt.is_empty());
    assert_next_ok(&client, &url, b"next").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // The stray body in a later write than the head.
    let (url, _) = raw_server(|mut stream, index| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        if index == 0 {
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = stream
                .write_all(b"HTTP/1.1 500 Leak\r\ncontent-length: 0\r\n\r\n")
                .await;
        } else {
            let _ = stream.write_all(&ok_response("next")).await;
        }
        let _ = read_request(&mut stream).await;
    })
    .await;
    assert_eq!(post(&client, &url).await.unwrap().status, 204);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_next_ok(&client, &url, b"next").await;
}

#[tokio::test]
async fn http_1_0_keep_alive_is_honoured() {
    let raw_response =
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok".to_vec();
    let (url, accepted) = serve_each(vec![raw_response.clone(), raw_response]).await;
    let client = client();
    for _ in 0..2 {
        assert_eq!(post(&client, &url).await.unwrap().excerpt, b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // Without keep-alive an HTTP/1.0 connection is closed even with a length.
    let raw_response = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
    let (url, accepted) = serve_each(vec![raw_response.clone(), raw_response]).await;
    for _ in 0..2 {
        assert_eq!(post(&client, &url).await.unwrap().excerpt, b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn close_after_request_before_response() {
    let (url, _) = raw_server(|mut stream, _| async move {
        let _ = read_request(&mut stream).await;
    })
    .await;
    let error = post(&client(), &url).await.unwrap_err();
    assert!(
        matches!(error, ExchangeError::BeforeResponse(_)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("before a full response head"),
        "{error}"
    );
}

#[tokio::test]
async fn early_response_to_a_large_body_is_read() {
    // The receiver sends 413 after the head and never reads the body, but keeps the connection
    // open. The client must return the 413 instead of waiting to finish writing.
    let (url, _) = small_window_server(|mut stream, _| async move {
        if read_head_only(&mut stream).await.is_none() {
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig")
            .await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let body = vec![b'x'; 16 * 1024 * 1024];
    let client = client();
    let response = post_body(&client, &url, &body).await.unwrap();
    assert_eq!(
        (response.status, response.excerpt.as_slice()),
        (413, &b"big"[..])
    );
}

#[tokio::test]
async fn interim_response_large_body_sent() {
    // A 100 Continue that the client did not request: the receiver still expects the whole body.
    let (url, accepted) = small_window_server(|mut stream, _| async move {
        let mut head = Vec::new();
        let mut byte = [0_u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        let mut body = vec![0_u8; 16 * 1024 * 1024];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let raw_response = ok_response(&format!("{}", body.len()));
        let _ = stream.write_all(&raw_response).await;
        let _ = read_request(&mut stream).await;
    })
    .await;
    let client = client();
    let body = vec![b'x'; 16 * 1024 * 1024];
    let response = post_body(&client, &url, &body).await.unwrap();
    assert_eq!(
        (response.status, response.excerpt.as_slice()),
        (200, &b"16777216"[..])
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn early_response_then_close_read() {
    // The receiver sends 413 after the head and closes without reading the body.
    let (url, _) = small_window_server(|mut stream, _| async move {
        if read_head_only(&mut stream).await.is_none() {
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbig")
            .await;
        let _ = stream.shutdown().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let body = vec![b'x'; 16 * 1024 * 1024];
    let response = post_body(&client(), &url, &body).await;
    let response = response.unwrap();
    assert_eq!(response.status, 413);
}

#[tokio::test]
async fn resets_at_each_point_are_errors() {
    // (bytes written before the reset, expected error variant)
    let cases: [(&'static [u8], &str); 4] = [
        (b"", "BeforeResponse"),
        (b"HTTP/1.1 200 OK\r\ncontent-le", "MidResponse"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf",
            "MidResponse",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil close", "MidResponse"),
    ];
    let client = client();
    for (written, expected) in cases {
        let (url, _) = raw_server(move |mut stream, _| async move {
            if read_request(&mut stream).await.is_none() {
                return;
            }
            let _ = stream.write_all(written).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(stream);
        })
        .await;
        let outcome = post(&client, &url).await;
        let described = match &outcome {
            Ok(response) => format!("{:?}", response.body_error),
            Err(error) => format!("{error:?}"),
        };
        assert!(described.contains(expected), "{written:?}: {described}");
    }
}

#[tokio::test]
async fn reset_while_idle_is_not_a_failure() {
    let (url, accepted) = raw_server(|mut stream, index| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        let _ = stream.write_all(&ok_response(&format!("c{index}"))).await;
        if index == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(stream);
        } else {
            let _ = read_request(&mut stream).await;
        }
    })
    .await;
    let client = client();
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"c0");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(post(&client, &url).await.unwrap().excerpt, b"c1");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// Starts a receiver that closes each connection shortly after its first response, as a server
/// with a short keep-alive timeout does.
async fn closing_receiver() -> (url::Url, Arc<AtomicUsize>) {
    raw_server(|mut stream, index| async move {
        if read_request(&mut stream).await.is_none() {
            return;
        }
        let _ = stream.write_all(&ok_response(&format!("c{index}"))).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(stream);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_idle_is_not_a_failure() {
    let (url, accepted) = closing_receiver().await;
    let client = client();
    for round in 0..5 {
        let response = post(&client, &url).await.unwrap();
        assert_eq!(response.excerpt, format!("c{round}").as_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn close_while_idle_one_thread() {
    let (url, accepted) = closing_receiver().await;
    let client = client();
    for round in 0..5 {
        let response = post(&client, &url).await.unwrap();
        assert_eq!(response.excerpt, format!("c{round}").as_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn non_utf8_header_values_are_kept_lossily() {
    let (url, _) = serve_each(vec![
        b"HTTP/1.1 503 Busy\r\nx-odd: \xff\xfe\r\nretry-after: \xc3\x28\r\ncontent-length: 1\r\n\r\nb"
            .to_vec(),
    ])
    .await;
    let response = post(&client(), &url).await.unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.retry_after.as_deref(), Some("\u{fffd}("));
}

#[tokio::test]
async fn silent_body_ends_at_caller_timeout() {
    // A head that promises a body which never arrives keeps the exchange waiting until the
    // caller's timeout, because the client has no read timeout of its own.
    let (url, _) = raw_server(|mut stream, _| async move {
        if read_request(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
    .await;
    let request = Request {
        url: &url,
        headers: &[],
        body: b"",
    };
    let client = client();
    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        client.post(&request, false, LIMIT),
    )
    .await;
    assert!(outcome.is_err(), "{outcome:?}");
    // The abandoned connection is not pooled: a new request opens another.
    let (url2, _) = serve_each(vec![ok_response("fresh")]).await;
    assert_eq!(post(&client, &url2).await.unwrap().excerpt, b"fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_head_one_byte_writes() {
    let mut raw_response = b"HTTP/1.1 200 OK\r\n".to_vec();
    for index in 0..40 {
        raw_response
            .extend_from_slice(format!("x-pad-{index}: {}\r\n", "p".repeat(1000)).as_bytes());
    }
    raw_response.extend_from_slice(b"content-length: 2\r\n\r\nok");
    let raw_response: &'static [u8] = Box::leak(raw_response.into_boxed_slice());
    let (url, _) = raw_server(move |mut stream, _| async move {
        if read_request(&mut stream).await.is_some() {
            for byte in raw_response {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let started = Instant::now();
    let response = post(&client(), &url).await.unwrap();
    assert_eq!(response.excerpt, b"ok");
    eprintln!(
        "40 KiB head in one-byte writes took {:?}",
        started.elapsed()
    );
}
