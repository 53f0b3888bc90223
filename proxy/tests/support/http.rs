//! Plain HTTP/1.0 requests to the admin listener, for both end-to-end
//! binaries.

/// A plain HTTP/1.0 GET; returns the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
    )
    .await
}

/// A plain HTTP/1.0 PUT of a JSON body; returns the status code and the body.
pub async fn http_put(addr: std::net::SocketAddr, path: &str, json: &str) -> (u16, String) {
    http_request(addr, "PUT", path, &[], json).await
}

/// A plain HTTP/1.0 request with extra headers and a JSON body.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: &str,
) -> (u16, String) {
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        json.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(json);
    http(addr, &request).await
}

async fn http(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin listener reachable");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("admin answers in time")
    .unwrap();
    let text = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, body.to_string())
}

/// One migration as `GET /migrations` reports it.
pub async fn migration(addr: std::net::SocketAddr, id: &str) -> serde_json::Value {
    let (_, body) = http_get(addr, "/migrations").await;
    let listing: serde_json::Value = serde_json::from_str(&body).expect("JSON from /migrations");
    listing["migrations"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no migration `{id}` in {listing}"))
}

/// The sum of counter `name` over the series on `/metrics` whose labels
/// include every `label="value"` of `labels`.
pub async fn counter(addr: std::net::SocketAddr, name: &str, labels: &[(&str, &str)]) -> u64 {
    let (_, metrics) = http_get(addr, "/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
