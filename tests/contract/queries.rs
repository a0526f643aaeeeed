//! Queries, scans and secondary indexes, over every backend: the single-table
//! design of programs and events, and readings with local indexes.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use futures::TryStreamExt;
use vhs::types::AttributeValue;
use vhs::{Cursor, Error, Json, Op, Store};

use crate::fixture::{Fixture, Kind};
use crate::models::{Event, EventTitle, Program, Reading};

/// A fixture with the single table (programs and events) and the readings
/// table. Programs create the single table; events then add their indexes to
/// it, as `ensure_table` does for each model of a single-table design.
async fn fixture(kind: Kind) -> Fixture {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let fx = Fixture::with(kind, |b| {
        b.table_for::<Program>(format!("single-{n}"))
            .table_for::<Reading>(format!("readings-{n}"))
    })
    .await;
    fx.store.ensure_table::<Program>().await.unwrap();
    fx.store.ensure_table::<Event>().await.unwrap();
    // Twice is a no-op.
    fx.store.ensure_table::<Event>().await.unwrap();
    fx.store.ensure_table::<Reading>().await.unwrap();
    fx.faults.reset();
    fx
}

fn offset(hours: i32) -> FixedOffset {
    FixedOffset::east_opt(hours * 3600).unwrap()
}

/// Events at 10:00 UTC on consecutive days, each written with another UTC
/// offset, so that their local texts do not sort as their instants do.
fn events(n: usize) -> Vec<Event> {
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let at = base + Duration::days(i as i64);
            let tz = offset([-8, 9, 0, 5, -3][i % 5]);
            Event {
                object_type: "EVENT".into(),
                id: format!("e{i:02}"),
                program_id: (i % 3 != 2).then(|| format!("p{}", i % 3)),
                event_start: at.with_timezone(&tz),
                seats: (i as u32) * 10,
                title: format!("event {i}"),
                data: Some(Json(serde_json::json!({ "n": i, "pad": "x".repeat(300) }))),
            }
        })
        .collect()
}

async fn collect<T>(
    s: impl futures::Stream<Item = vhs::Result<T>> + Send + 'static,
) -> vhs::Result<Vec<T>> {
    s.try_collect().await
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

pub async fn query_range_conditions_and_order(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let at = |n: u32| {
        (Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(n as i64))
            .fixed_offset()
    };
    for n in [1u32, 2, 3, 10, 20, 100] {
        let r = Reading {
            sensor: "s".into(),
            n,
            at: at(n),
            label: format!("l{n}"),
            filler: String::new(),
        };
        fx.store.create_large(&r).await.unwrap();
    }
    let other = Reading {
        sensor: "other".into(),
        n: 5,
        at: at(5),
        label: "l5".into(),
        filler: String::new(),
    };
    fx.store.create_large(&other).await.unwrap();
    let q = |range: Option<vhs::Condition>, descending: bool| {
        let mut q = fx.store.query::<Reading>(Reading::SENSOR.eq("s"));
        if let Some(r) = range {
            q = q.range(r);
        }
        if descending {
            q = q.descending();
        }
        async move {
            let items: Vec<Reading> = collect(q.items()).await.unwrap();
            items.into_iter().map(|r| r.n).collect::<Vec<u32>>()
        }
    };
    // Numbers order numerically, not as text.
    assert_eq!(q(None, false).await, [1, 2, 3, 10, 20, 100]);
    assert_eq!(q(None, true).await, [100, 20, 10, 3, 2, 1]);
    assert_eq!(q(Some(Reading::N.eq(&10)), false).await, [10]);
    assert_eq!(q(Some(Reading::N.lt(&10)), false).await, [1, 2, 3]);
    assert_eq!(q(Some(Reading::N.le(&10)), true).await, [10, 3, 2, 1]);
    assert_eq!(q(Some(Reading::N.gt(&10)), false).await, [20, 100]);
    assert_eq!(q(Some(Reading::N.ge(&10)), true).await, [100, 20, 10]);
    assert_eq!(
        q(Some(Reading::N.between(&2, &20)), false).await,
        [2, 3, 10, 20]
    );
    assert_eq!(
        q(Some(Reading::N.between(&2, &20)), true).await,
        [20, 10, 3, 2]
    );
    // begins_with on a string range key: the local index by label.
    let labels: Vec<Reading> = collect(
        fx.store
            .query::<Reading>(Reading::SENSOR.eq("s"))
            .range(Reading::LABEL.begins_with("l1"))
            .items(),
    )
    .await
    .unwrap();
    let mut labels: Vec<String> = labels.into_iter().map(|r| r.label).collect();
    assert_eq!(labels, ["l1", "l10", "l100"]);
    labels.clear();

    // A limit, pages of two, and resuming from each page's cursor.
    let pages: Vec<vhs::Page<Reading>> = collect(
        fx.store
            .query::<Reading>(Reading::SENSOR.eq("s"))
            .page_size(2)
            .limit(5)
            .pages(),
    )
    .await
    .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let cursor: Cursor = pages[1].cursor.clone().expect("a cursor after page 2");
    let text = cursor.to_string();
    let resumed: Vec<Reading> = collect(
        fx.store
            .query::<Reading>(Reading::SENSOR.eq("s"))
            .start_after(text.parse().unwrap())
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(resumed.iter().map(|r| r.n).collect::<Vec<_>>(), [20, 100]);
    // The last page of a listing that ended has no cursor.
    let all: Vec<vhs::Page<Reading>> = collect(
        fx.store
            .query::<Reading>(Reading::SENSOR.eq("s"))
            .page_size(4)
            .pages(),
    )
    .await
    .unwrap();
    assert!(all.last().unwrap().cursor.is_none());
    assert_eq!(all.iter().map(|p| p.items.len()).sum::<usize>(), 6);
}

pub async fn query_pages_past_one_megabyte(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    // 12 items of ~200 KB: 2.4 MB, so at least three 1 MB pages.
    let filler = "f".repeat(200 * 1024);
    for n in 0..12u32 {
        let r = Reading {
            sensor: "big".into(),
            n,
            at: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, n)
                .unwrap()
                .fixed_offset(),
            label: format!("{n:02}"),
            filler: filler.clone(),
        };
        fx.store.create_large(&r).await.unwrap();
    }
    fx.faults.reset();
    let items: Vec<Reading> = collect(fx.store.query::<Reading>(Reading::SENSOR.eq("big")).items())
        .await
        .unwrap();
    assert_eq!(
        items.iter().map(|r| r.n).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>()
    );
    let queries = fx
        .faults
        .calls()
        .iter()
        .filter(|o| **o == Op::Query)
        .count();
    assert!(queries >= 3, "{queries} Query calls for 2.4 MB");
    // The same through a scan.
    fx.faults.reset();
    let scanned: Vec<Reading> = collect(fx.store.scan::<Reading>().items()).await.unwrap();
    assert_eq!(scanned.len(), 12);
    assert!(fx.faults.calls().iter().filter(|o| **o == Op::Scan).count() >= 3);
}

pub async fn global_index_date_ranges_across_offsets(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let all = events(10);
    for e in &all {
        fx.store.create_large(e).await.unwrap();
    }
    let program = Program {
        object_type: "PROGRAM".into(),
        id: "p0".into(),
        program_name: "Opera".into(),
        data: Some(Json(serde_json::json!({"small": true}))),
    };
    fx.store.create_large(&program).await.unwrap();

    // The stored text is canonical UTC, whatever offset was written.
    let item = fx.item(&Event::key("EVENT", "e01")).await.unwrap();
    assert_eq!(
        item["eventStart"],
        AttributeValue::S("2026-11-02T10:00:00.000000000Z".into())
    );

    // Events from Nov 3 to Nov 7 (UTC), bounds given in other offsets.
    let from: DateTime<FixedOffset> = "2026-11-03T12:00:00+02:00".parse().unwrap();
    let to: DateTime<FixedOffset> = "2026-11-07T05:00:00-05:00".parse().unwrap();
    let found: Vec<Event> = collect(
        fx.store
            .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
            .range(Event::EVENT_START.between(&from, &to))
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&found), ["e02", "e03", "e04", "e05", "e06"]);
    // Loaded: the large JSON came back, and the times are the same instants.
    assert_eq!(found, all[2..7].to_vec());
    let newest: Vec<Event> = collect(
        fx.store
            .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
            .range(Event::EVENT_START.ge(&from))
            .descending()
            .limit(2)
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&newest), ["e09", "e08"]);
    // Per program, by date: a sparse index (events without a program are not in it).
    let p1: Vec<Event> = collect(
        fx.store
            .query::<Event>(Event::PROGRAM_ID.eq("p1"))
            .range(Event::EVENT_START.lt(&to))
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&p1), ["e01", "e04"]);
    // Per program, by id: the two indexes of `programID` are told apart by
    // the range key named. This one holds `title` only: the events come
    // whole from the table, large values loaded.
    let p0: Vec<Event> = collect(
        fx.store
            .query::<Event>(Event::PROGRAM_ID.eq("p0"))
            .range(Event::ID.ge("e03"))
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&p0), ["e03", "e06", "e09"]);
    assert_eq!(p0[0], all[3]);
    // Without a range condition both fit: name one.
    let err = collect(fx.store.query::<Event>(Event::PROGRAM_ID.eq("p0")).items())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { ref message } if message.contains(".index(")),
        "{err}"
    );
    let p0: Vec<Event> = collect(
        fx.store
            .query::<Event>(Event::PROGRAM_ID.eq("p0"))
            .index("programID-eventStart-index")
            .descending()
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&p0), ["e09", "e06", "e03", "e00"]);
    // Programs by name, in the index Program added to the same table. It
    // holds the keys only: the items are read from the table.
    fx.faults.reset();
    let programs: Vec<Program> = collect(
        fx.store
            .query::<Program>(Program::OBJECT_TYPE.eq("PROGRAM"))
            .range(Program::PROGRAM_NAME.begins_with("Op"))
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(programs, [program]);
    assert_eq!(
        fx.faults.calls(),
        [Op::Query, Op::BatchGetItem],
        "keys from the index, the items from the table"
    );
}

pub async fn local_index_date_ranges(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    // Readings numbered in the opposite order of their times, each written
    // in another UTC offset.
    let base = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    for n in 0..6u32 {
        let tz = offset([5, -7, 0, 11, -2, 3][n as usize]);
        let r = Reading {
            sensor: "t".into(),
            n,
            at: (base - Duration::minutes(n as i64)).with_timezone(&tz),
            label: format!("{n}"),
            filler: String::new(),
        };
        fx.store.create_large(&r).await.unwrap();
    }
    let after: DateTime<FixedOffset> = (base - Duration::minutes(4)).with_timezone(&offset(-9));
    let by_time: Vec<Reading> = collect(
        fx.store
            .query::<Reading>(Reading::SENSOR.eq("t"))
            .range(Reading::AT.gt(&after))
            .consistent()
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(
        by_time.iter().map(|r| r.n).collect::<Vec<_>>(),
        [3, 2, 1, 0]
    );
    let latest_first: Vec<Reading> = collect(
        fx.store
            .query::<Reading>(Reading::SENSOR.eq("t"))
            .range(Reading::AT.le(&after))
            .descending()
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(latest_first.iter().map(|r| r.n).collect::<Vec<_>>(), [4, 5]);
}

pub async fn filters_projections_and_placeholders(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let all = events(8);
    for e in &all {
        fx.store.create_large(e).await.unwrap();
    }
    // A filter: only events with 40 seats or more; a short page is skipped
    // over, not returned empty.
    let pages: Vec<vhs::Page<Event>> = collect(
        fx.store
            .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
            .filter(Event::SEATS.ge(&40))
            .filter(Event::TITLE.ne("event 6"))
            .page_size(3)
            .pages(),
    )
    .await
    .unwrap();
    assert!(pages.iter().all(|p| !p.items.is_empty()));
    let found: Vec<Event> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(ids(&found), ["e04", "e05", "e07"]);

    // A projection onto a view model: only its attributes are read.
    let titles: Vec<EventTitle> = collect(
        fx.store
            .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
            .range(Event::ID.between("e01", "e02"))
            .select::<EventTitle>()
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(
        titles.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        ["event 1", "event 2"]
    );

    // Not loaded: pointers kept, no GetObject; loadable per item later.
    fx.faults.reset();
    let mut stored: Vec<vhs::Stored<Event>> = collect(
        fx.store
            .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
            .limit(2)
            .stored(),
    )
    .await
    .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored
        .iter()
        .all(|s| s.model.data.is_none() && s.pointer("data").is_some()));
    assert!(!fx.faults.calls().contains(&Op::GetObject));
    fx.store.load(&mut stored[1], &["data"]).await.unwrap();
    assert_eq!(stored[1].model, all[1]);

    // A deleted item (a placeholder until GC) is in no listing.
    Event::delete_large(&fx.store, &Event::key("EVENT", "e00"))
        .await
        .unwrap();
    let left: Vec<Event> = collect(
        fx.store
            .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
            .items(),
    )
    .await
    .unwrap();
    assert_eq!(left.len(), 7);
    assert_eq!(left[0].id, "e01");
    let scanned: Vec<Event> = collect(
        fx.store
            .scan::<Event>()
            .segments(3)
            .filter(Event::OBJECT_TYPE.eq("EVENT"))
            .items(),
    )
    .await
    .unwrap();
    let mut scanned = ids(&scanned);
    scanned.sort();
    assert_eq!(scanned, ids(&left));
}

pub async fn query_input_errors_send_nothing(fx: Fixture) {
    let fx = fixture(fx.kind).await;
    let store: &Store = &fx.store;
    let invalid = |r: vhs::Result<Vec<Event>>| match r {
        Err(Error::InvalidInput { message }) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let t: DateTime<FixedOffset> = "2026-01-01T00:00:00Z".parse().unwrap();
    let cases = [
        // The hash condition must be an equality.
        collect(store.query::<Event>(Event::OBJECT_TYPE.ne("EVENT")).items()).await,
        // No key of the table or of an index is `seats`.
        collect(store.query::<Event>(Event::SEATS.eq(&3)).items()).await,
        // `<>` is no key condition.
        collect(
            store
                .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
                .range(Event::ID.ne("x"))
                .items(),
        )
        .await,
        // Bounds the wrong way round.
        collect(
            store
                .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
                .range(Event::ID.between("b", "a"))
                .items(),
        )
        .await,
        // Strong consistency on a global index.
        collect(
            store
                .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
                .range(Event::EVENT_START.gt(&t))
                .consistent()
                .items(),
        )
        .await,
        // An index the model does not declare.
        collect(
            store
                .query::<Event>(Event::OBJECT_TYPE.eq("EVENT"))
                .index("nope-index")
                .items(),
        )
        .await,
        // Resuming a parallel scan.
        collect(
            store
                .scan::<Event>()
                .segments(2)
                .start_after(Cursor::from_str_checked())
                .items(),
        )
        .await,
    ];
    for r in cases {
        let m = invalid(r);
        assert!(!m.is_empty());
    }
    assert!(
        "not a cursor".parse::<Cursor>().is_err() && "".parse::<Cursor>().is_err(),
        "bad cursor text is refused"
    );
    // A model with indexes cannot be kept by a versioned store.
    let refused = vhs::SingleVersionStore::<Event>::new(store, "versioned-events").unwrap_err();
    assert!(refused.to_string().contains("secondary index"), "{refused}");
    assert!(vhs::MultiVersionStore::<Event>::new(store, "versioned-events").is_err());
    assert!(fx.faults.calls().is_empty(), "{:?}", fx.faults.calls());
}

trait CursorForTest {
    fn from_str_checked() -> Cursor;
}

impl CursorForTest for Cursor {
    fn from_str_checked() -> Cursor {
        // {"objectType":{"S":"EVENT"},"id":{"S":"e00"}}
        let json = r#"{"id":{"S":"e00"},"objectType":{"S":"EVENT"}}"#;
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json)
            .parse()
            .unwrap()
    }
}
