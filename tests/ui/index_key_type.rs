use vhs::Model;

#[derive(Model, serde::Serialize, serde::Deserialize)]
struct Event {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(gsi_hash = "by-tags")]
    tags: Vec<String>,
    seats: u32,
}

fn main() {
    // A misspelt attribute does not compile.
    let _ = Event::SEAST.eq(&1);
    // Nor does a value of the wrong type.
    let _ = Event::SEATS.eq("many");
}
