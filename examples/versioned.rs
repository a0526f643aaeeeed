//! Versioned stores on the in-memory backend: every write carries a version, and
//! concurrent writers can never reorder or lose each other's updates.
//!
//! ```text
//! cargo run --example versioned
//! ```

use std::sync::Arc;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use vhs::{Error, Json, MemoryBackend, Model, MultiVersionStore, Order, SingleVersionStore, Store};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Stats {
    views: u64,
}

/// Any `#[derive(Model)]` type can be the value of a versioned store.
#[derive(Model, Debug, Clone, PartialEq)]
struct Page {
    #[vhs(hash_key)]
    slug: String,
    #[large]
    html: Option<String>,
    #[large]
    stats: Option<Json<Stats>>,
    title: String,
}

fn page(title: &str, views: u64) -> Page {
    Page {
        slug: "home".into(),
        html: Some(format!("<h1>{title}</h1>")),
        stats: Some(Json(Stats { views })),
        title: title.into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let store = Store::builder(MemoryBackend::new(), "pages-bucket").build()?;
    store.ensure_bucket().await?;

    // Single-version: table keyed by `id` (S); only the newest version is kept.
    let latest = Arc::new(SingleVersionStore::<Page>::new(&store, "pages-latest")?);
    latest.ensure_table().await?;
    latest.put("home", 1, &page("Welcome", 0)).await?;
    match latest.put("home", 0, &page("Older", 0)).await {
        Err(Error::HigherVersionExists { found, .. }) => {
            println!("put v0 refused: v{found} is stored")
        }
        other => panic!("{other:?}"),
    }

    // 8 writers each count 25 views: `update` re-reads and retries on conflict.
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let latest = latest.clone();
            tokio::spawn(async move {
                let mut attempts = 0;
                for _ in 0..25 {
                    let w = latest
                        .update("home", |mut p| {
                            p.stats.as_mut().unwrap().0.views += 1;
                            p
                        })
                        .await?;
                    attempts += w.attempts;
                }
                Ok::<_, Error>(attempts)
            })
        })
        .collect();
    let mut attempts = 0;
    for w in writers {
        attempts += w.await.expect("task")?;
    }
    let now = latest.get_latest("home").await?;
    println!(
        "single-version: v{} with {} views after 200 updates ({attempts} attempts)",
        now.version,
        now.value.stats.as_ref().unwrap().0.views
    );
    assert_eq!(now.value.stats.unwrap().0.views, 200);

    // Multi-version: table keyed by `id` (S) and `version` (N); every version kept.
    let history = MultiVersionStore::<Page>::new(&store, "pages-history")?;
    history.ensure_table().await?;
    for (i, title) in ["Draft", "Review", "Published", "Typo fixed"]
        .iter()
        .enumerate()
    {
        history.put_latest("home", &page(title, i as u64)).await?;
    }
    let versions: Vec<u64> = history
        .versions("home", Order::NewestFirst)
        .try_collect()
        .await?;
    println!("multi-version: versions newest first {versions:?}");
    println!("  v1 is {:?}", history.get("home", 1).await?.value.title);
    let pruned = history.prune("home", 2).await?;
    println!(
        "  pruned versions {:?} and {} objects",
        pruned.versions,
        pruned.cleanup.deleted.len()
    );
    println!(
        "  latest is {:?}",
        history.get_latest("home").await?.value.title
    );
    Ok(())
}
