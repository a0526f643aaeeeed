//! Uploads that bypass the application server: a client sends a file straight
//! to S3 with a presigned POST (the form a browser sends), then the
//! application commits it through the protocol.
//!
//! ```text
//! cargo run --example browser_upload                       # in memory
//! VHS_ENDPOINT=http://127.0.0.1:4566 cargo run --example browser_upload
//! ```
//!
//! The application is a tiny HTTP server (axum) with two routes:
//! `POST /uploads` hands out a ticket for a file the client describes (name,
//! size, SHA-256), `POST /uploads/commit` commits it. The client (a plain HTTP
//! client, reqwest, standing in for a browser) asks for a ticket, posts the
//! file to the ticket's URL with its form fields, and asks for the commit.
//!
//! With `VHS_ENDPOINT` the file goes to that S3 (an emulator such as
//! ministack: `BIND_HOST=127.0.0.1 GATEWAY_PORT=4566 SERVICES=s3,dynamodb
//! ministack`). Without it, the store is in memory, and the same server also
//! plays S3's part for the memory backend (`/s3`, which does with the upload
//! what S3 would: [`MemoryBackend::send_presigned`]).

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use sha2::Digest as _;
use vhs::{
    AwsBackend, AwsOptions, Checksum, ChecksumAlgorithm, Error, MemoryBackend, Model,
    PresignedUpload, Store, UploadSpec, UploadTicket,
};

/// A user's scanned document: the scan goes to S3, named by its SHA-256.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "scans")]
struct Scan {
    #[vhs(hash_key)]
    id: String,
    file_name: String,
    #[large(checksum = "sha256", content_type = "application/pdf")]
    pdf: Option<Vec<u8>>,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Describe {
    id: String,
    sha256: String,
    size: u64,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct CommitRequest {
    file_name: String,
    ticket: UploadTicket,
}

struct App {
    store: Store,
    /// Set when the store is in memory: `/s3` stands in for S3.
    memory: Option<MemoryBackend>,
}

type Reply<T> = Result<Json<T>, (StatusCode, String)>;

fn refused(e: Error) -> (StatusCode, String) {
    let status = match e {
        Error::Ticket { .. } | Error::UploadMissing { .. } | Error::InvalidInput { .. } => {
            StatusCode::BAD_REQUEST
        }
        Error::AlreadyExists { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string())
}

/// `POST /uploads`: a ticket for the file the client describes.
async fn ticket(State(app): State<Arc<App>>, Json(file): Json<Describe>) -> Reply<UploadTicket> {
    let checksum = Checksum::from_hex(ChecksumAlgorithm::Sha256, &file.sha256)
        .ok_or((StatusCode::BAD_REQUEST, "sha256: 64 hex digits".to_owned()))?;
    let spec = UploadSpec::new(checksum).size(file.size).post();
    let mut ticket = Scan::presign_upload(&app.store, &Scan::key(file.id), "pdf", spec)
        .await
        .map_err(refused)?;
    if app.memory.is_some() {
        // The memory backend has no HTTP server: its door is ours.
        ticket
            .upload
            .fields
            .push(("x-vhs-url".into(), ticket.upload.url));
        ticket.upload.url = "/s3".into();
    }
    Ok(Json(ticket))
}

/// `POST /uploads/commit`: the uploaded file becomes the item's value.
async fn commit(State(app): State<Arc<App>>, Json(req): Json<CommitRequest>) -> Reply<String> {
    let id = req.ticket.object_key.clone();
    let scan = Scan {
        id: Scan::id_of(&req.ticket).to_owned(),
        file_name: req.file_name,
        pdf: None, // the upload is the value
    };
    let staged = Scan::create_large_from_upload(&app.store, &scan, &[req.ticket])
        .await
        .map_err(refused)?;
    let size = staged.object("pdf").map_or(0, |o| o.size);
    Ok(Json(format!("committed {id} ({size} bytes)")))
}

impl Scan {
    /// The item a ticket was issued for: its key is in the object key
    /// (`…/pk={id}/attr=pdf/…`); the commit checks it against the ticket's
    /// signature anyway.
    fn id_of(ticket: &UploadTicket) -> &str {
        ticket
            .object_key
            .split('/')
            .find_map(|s| s.strip_prefix("pk="))
            .unwrap_or_default()
    }
}

/// `POST /s3`: what S3 does with a presigned POST, for the memory backend.
async fn s3(
    State(app): State<Arc<App>>,
    mut form: Multipart,
) -> Result<StatusCode, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let memory = app.memory.as_ref().ok_or(bad("not in memory".into()))?;
    let mut upload = PresignedUpload {
        method: vhs::UploadMethod::Post,
        url: String::new(),
        headers: Vec::new(),
        fields: Vec::new(),
    };
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_owned();
        let value = field.bytes().await.map_err(|e| bad(e.to_string()))?;
        match name.as_str() {
            "file" => {
                memory
                    .send_presigned(&upload, value)
                    .await
                    .map_err(|e| (StatusCode::FORBIDDEN, e.to_string()))?;
                return Ok(StatusCode::NO_CONTENT);
            }
            "x-vhs-url" => upload.url = String::from_utf8_lossy(&value).into_owned(),
            _ => upload
                .fields
                .push((name, String::from_utf8_lossy(&value).into_owned())),
        }
    }
    Err(bad("no file field".into()))
}

/// The client: a plain HTTP client, as a browser would do it.
async fn client(
    app_url: &str,
    id: &str,
    pdf: Vec<u8>,
) -> Result<String, Box<dyn std::error::Error>> {
    let http = reqwest::Client::new();
    // 1. Describe the file, get a ticket.
    let describe = Describe {
        id: id.to_owned(),
        sha256: sha2::Sha256::digest(&pdf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        size: pdf.len() as u64,
    };
    let ticket: UploadTicket = http
        .post(format!("{app_url}/uploads"))
        .json(&describe)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    // 2. Send the file straight to S3: the form fields, then the file.
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in &ticket.upload.fields {
        form = form.text(k.clone(), v.clone());
    }
    let file = reqwest::multipart::Part::bytes(pdf).file_name("scan.pdf");
    let url = match ticket.upload.url.starts_with('/') {
        true => format!("{app_url}{}", ticket.upload.url),
        false => ticket.upload.url.clone(),
    };
    let sent = http
        .post(url)
        .multipart(form.part("file", file))
        .send()
        .await?;
    if !sent.status().is_success() {
        return Err(format!("S3 refused the upload: {}", sent.text().await?).into());
    }
    // 3. Ask the application to commit it.
    let commit = CommitRequest {
        file_name: "scan.pdf".into(),
        ticket,
    };
    let answer = http
        .post(format!("{app_url}/uploads/commit"))
        .json(&commit)
        .send()
        .await?;
    let status = answer.status();
    let text = answer.text().await?;
    if !status.is_success() {
        return Err(format!("{status}: {text}").into());
    }
    Ok(text)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    let (backend, memory): (Arc<dyn vhs::Backend>, _) = match std::env::var("VHS_ENDPOINT") {
        Ok(url) => {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test", "test", None, None, "example",
                ))
                .region(aws_config::Region::new("us-east-1"))
                .load()
                .await;
            let backend = AwsBackend::with_options(&config, AwsOptions::emulator(url));
            (Arc::new(backend), None)
        }
        Err(_) => {
            let memory = MemoryBackend::new();
            (Arc::new(memory.clone()), Some(memory))
        }
    };
    let store = Store::builder(backend, "browser-uploads")
        .upload_secret(secret)
        .build()?;
    store.ensure_bucket().await?;
    store.ensure_table::<Scan>().await?;

    let app = Arc::new(App {
        store: store.clone(),
        memory,
    });
    let router = Router::new()
        .route("/uploads", post(ticket))
        .route("/uploads/commit", post(commit))
        .route("/s3", post(s3))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let pdf = b"%PDF-1.7\n".repeat(50_000); // ~450 KB: too big for an item
    println!("{}", client(&app_url, "scan-1", pdf.clone()).await?);
    let read = Scan::get_large(&store, &Scan::key("scan-1")).await?;
    assert_eq!(read.pdf.as_deref(), Some(&pdf[..]));
    println!("read back {} bytes of {}", pdf.len(), read.file_name);

    // The same file again for the same item: refused, nothing changed.
    let again = client(&app_url, "scan-1", pdf).await;
    println!(
        "again: {}",
        again.err().map_or("accepted".into(), |e| e.to_string())
    );
    server.abort();
    Ok(())
}
