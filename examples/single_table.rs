//! A single-table design on the in-memory backend (no servers): programs and
//! events in one table, four global indexes, date-range queries, a
//! transaction and the read cache.
//!
//! ```text
//! cargo run --example single_table
//! ```
//!
//! The table has hash key `objectType` (PROGRAM, EVENT) and range key `id`;
//! `programName-index` lists programs by name, `programID-index` a program's
//! events by id, `objectType-eventStart-index` every event by date, and
//! `programID-eventStart-index` a program's events by date. Each entity keeps
//! its body as JSON in `data`, in the item while small and in S3 when large.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use vhs::{
    CacheOptions, Condition, Error, FaultyBackend, Json, MemoryBackend, Model, Op, Precondition,
    Store,
};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ProgramData {
    description: String,
    tags: Vec<String>,
}

#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "single")]
struct Program {
    #[vhs(hash_key, rename = "objectType", gsi_hash = "programName-index")]
    object_type: String,
    #[vhs(range_key)]
    id: String,
    #[vhs(rename = "programName", gsi_range = "programName-index")]
    program_name: String,
    #[vhs(updated_at, rename = "updatedAt")]
    updated_at: Option<DateTime<Utc>>,
    /// In the item below 4 KB, in S3 above.
    #[large(inline_below = 4096)]
    data: Option<Json<ProgramData>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct EventData {
    venue: String,
    notes: String,
}

#[derive(Model, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[vhs(table = "single")]
struct Event {
    #[vhs(
        hash_key,
        rename = "objectType",
        gsi_hash = "objectType-eventStart-index"
    )]
    object_type: String,
    #[vhs(range_key, gsi_range = "programID-index")]
    id: String,
    #[vhs(
        rename = "programID",
        gsi_hash = "programID-index",
        gsi_hash = "programID-eventStart-index"
    )]
    program_id: Option<String>,
    /// Stored as canonical UTC text (`2026-12-01T18:00:00.000000000Z`), so
    /// the index orders by instant whatever offset the input had.
    #[vhs(
        rename = "eventStart",
        gsi_range = "objectType-eventStart-index",
        gsi_range = "programID-eventStart-index"
    )]
    event_start: DateTime<FixedOffset>,
    seats: u32,
    #[vhs(updated_at, rename = "updatedAt")]
    updated_at: Option<DateTime<Utc>>,
    #[large(inline_below = 4096)]
    data: Option<Json<EventData>>,
}

fn time(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("a valid RFC 3339 time")
}

fn event(id: &str, program: &str, start: &str, seats: u32, notes: usize) -> Event {
    Event {
        object_type: "EVENT".into(),
        id: id.into(),
        program_id: Some(program.into()),
        event_start: time(start),
        seats,
        updated_at: None,
        data: Some(Json(EventData {
            venue: "Main hall".into(),
            notes: "n".repeat(notes),
        })),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The fault injector only counts requests here, to show the cache at work.
    let backend = FaultyBackend::new(MemoryBackend::new());
    let store = Store::builder(backend.clone(), "my-bucket")
        .cache(
            CacheOptions::new()
                .ttl_for::<Program>(Duration::from_secs(3600))
                .query_ttl_for::<Event>(Duration::from_secs(300)),
        )
        .build()?;
    store.ensure_bucket().await?;
    // The table with Program's index, then Event's three indexes added to it.
    store.ensure_table::<Program>().await?;
    store.ensure_table::<Event>().await?;

    // One transaction: a program and its first events, all or nothing. The
    // large notes go to S3 first; the items are written at once.
    let opera = Program {
        object_type: "PROGRAM".into(),
        id: "prg-0001".into(),
        program_name: "Opera season".into(),
        updated_at: None,
        data: Some(Json(ProgramData {
            description: "Six evenings".into(),
            tags: vec!["music".into()],
        })),
    };
    store
        .transaction()
        .create(&opera)
        .create(&event(
            "evt-0001",
            "prg-0001",
            "2026-12-01T19:00:00+01:00",
            300,
            10,
        ))
        .create(&event(
            "evt-0002",
            "prg-0001",
            "2026-12-03T12:30:00-05:00",
            120,
            20_000,
        ))
        .create(&event(
            "evt-0003",
            "prg-0001",
            "2026-12-02T09:00:00+09:00",
            80,
            10,
        ))
        .commit()
        .await?;
    store
        .create_large(&event(
            "evt-0004",
            "prg-0002",
            "2026-12-02T20:00:00Z",
            40,
            10,
        ))
        .await?;

    // Every event of early December, by instant (the offsets differ).
    let from = time("2026-12-01T00:00:00Z");
    let to = time("2026-12-02T23:59:59Z");
    let early: Vec<Event> = store
        .query(Event::OBJECT_TYPE.eq("EVENT"))
        .range(Event::EVENT_START.between(&from, &to))
        .items()
        .try_collect()
        .await?;
    // (Read back, a `DateTime<FixedOffset>` is in UTC: the same instant.)
    println!("events from {from} to {to}:");
    for e in &early {
        println!("  {} at {}, {} seats", e.id, e.event_start, e.seats);
    }
    assert_eq!(
        early.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt-0001", "evt-0003", "evt-0004"]
    );

    // One program's events, latest first, two per page, resumable by cursor.
    let mut pages = Box::pin(
        store
            .query::<Event>(Event::PROGRAM_ID.eq("prg-0001"))
            .range(Event::EVENT_START.ge(&from))
            .descending()
            .page_size(2)
            .stored_pages(),
    );
    while let Some(page) = pages.try_next().await? {
        let ids: Vec<&str> = page.items.iter().map(|s| s.model.id.as_str()).collect();
        // Not loaded: a large value stays a pointer until asked for.
        let in_s3 = page
            .items
            .iter()
            .filter(|s| s.pointer("data").is_some())
            .count();
        println!(
            "page {ids:?} ({in_s3} with notes in S3), next: {}",
            page.cursor.map_or("none".into(), |c| c.to_string())
        );
    }

    // Programs by name, and the cache: the second read sends nothing.
    let found: Vec<Program> = store
        .query(Program::OBJECT_TYPE.eq("PROGRAM"))
        .range(Program::PROGRAM_NAME.begins_with("Opera"))
        .items()
        .try_collect()
        .await?;
    assert_eq!(found.len(), 1);
    let key = Program::key("PROGRAM", "prg-0001");
    let before = backend.calls().len();
    let first = store.get_large(&key).await?;
    let second = store.get_large(&key).await?;
    assert_eq!(first, second);
    println!(
        "two reads of the program sent {} request(s) (updated at {})",
        backend.calls().len() - before,
        first.updated_at.expect("set by the store")
    );

    // Move an event and cut its seats, if the program still exists; the
    // write invalidates the cached pages of the table.
    let moved = time("2026-12-04T19:00:00+01:00");
    store
        .transaction()
        .update(
            &Event::key("EVENT", "evt-0001"),
            Event::changes()
                .set_event_start(moved)
                .set_seats(250)
                .condition(Event::SEATS.ge(&250)),
        )
        .check(
            &key,
            Precondition::new().condition(Condition::exists("data")),
        )
        .commit()
        .await?;
    let queries = backend.calls().iter().filter(|o| **o == Op::Query).count();
    let late: Vec<Event> = store
        .query(Event::OBJECT_TYPE.eq("EVENT"))
        .range(Event::EVENT_START.gt(&to))
        .items()
        .try_collect()
        .await?;
    assert_eq!(
        late.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt-0002", "evt-0001"]
    );
    assert!(backend.calls().iter().filter(|o| **o == Op::Query).count() > queries);
    println!(
        "after the move: {:?}",
        late.iter().map(|e| &e.id).collect::<Vec<_>>()
    );

    // A cancellation names the action and the reason; nothing is written.
    let err = store
        .transaction()
        .create(&event(
            "evt-0005",
            "prg-0001",
            "2026-12-05T19:00:00Z",
            10,
            10,
        ))
        .update(
            &Event::key("EVENT", "evt-0002"),
            Event::changes()
                .set_seats(1)
                .condition(Event::SEATS.lt(&100)),
        )
        .commit()
        .await
        .unwrap_err();
    println!("canceled: {err}");
    assert!(matches!(err, Error::TransactionCanceled { action: 1, .. }));
    assert!(store
        .get_large(&Event::key("EVENT", "evt-0005"))
        .await
        .unwrap_err()
        .is_not_found());
    store.flush().await;
    Ok(())
}
