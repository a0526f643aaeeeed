use vhs::Model;

#[derive(Model)]
struct Event {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(gsi_range = "no-hash-index")]
    a: String,
    #[large]
    #[vhs(gsi_hash = "large-index")]
    b: Option<String>,
    #[vhs(gsi_hash = "ab")]
    c: String,
    #[vhs(gsi_hash = "two-index")]
    d: String,
    #[vhs(gsi_hash = "two-index")]
    e: String,
    #[vhs(lsi = "local-index")]
    f: String,
    #[vhs(gsi_hash = "mixed-index", lsi = "mixed-index")]
    g: String,
    #[vhs(gsi_hash = "same-index", gsi_range = "same-index")]
    h: String,
}

fn main() {}
