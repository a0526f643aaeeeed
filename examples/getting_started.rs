//! The README's "Getting started", word for word (a test keeps the two the same):
//! a model with a `Blob` field and no serde derive, on a local emulator.
//!
//! ```text
//! GATEWAY_PORT=4566 BIND_HOST=127.0.0.1 SERVICES=s3,dynamodb ministack &
//! cargo run --example getting_started
//! ```
use futures::StreamExt;
use vhs::{AwsBackend, AwsOptions, Blob, Model, Store};

#[derive(Model, Debug)]
#[vhs(table = "videos")]
struct Video {
    #[vhs(hash_key)]
    id: String,
    title: String,
    tags: Vec<String>,
    #[large(content_type = "video/mp4")]
    file: Option<Blob>, // any size: streamed from a file, read back into one
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // On AWS: AwsBackend::new(&aws_config::load_from_env().await)
    let url = std::env::var("VHS_ENDPOINT_URL").unwrap_or("http://127.0.0.1:4566".into());
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let backend = AwsBackend::with_options(&config, AwsOptions::emulator(url));
    let store = Store::builder(backend, "my-videos")
        .prefix("videos/v1")
        .build()?;
    store.ensure_bucket().await?;
    store.ensure_table::<Video>().await?;

    let path = std::env::temp_dir().join("clip.mp4");
    std::fs::write(&path, vec![7u8; 20 * 1024 * 1024])?; // 20 MiB: a multipart upload
    let video = Video {
        id: "clip-1".into(),
        title: "First clip".into(),
        tags: vec!["demo".into()],
        file: Some(Blob::from_file(&path).await?),
    };
    Video::create_large(&store, &video).await?;

    let key = Video::key("clip-1");
    let read = Video::get_large(&store, &key).await?;
    let file = read.file.expect("stored");
    println!("{}: {} bytes in {:?}", read.title, file.len(), file.path());
    Video::update_large(&store, &key, Video::changes().set_title("Renamed")).await?;

    // A listing yields each item on its own: one bad item never hides the others.
    let mut videos = store.scan::<Video>().items();
    while let Some(video) = videos.next().await {
        match video {
            Ok(video) => println!("{} {:?}", video.id, video.title),
            Err(e) => eprintln!("skipped: {e}"),
        }
    }
    Video::delete_large(&store, &key).await?;
    Ok(())
}
