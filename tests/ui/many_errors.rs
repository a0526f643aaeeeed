use vhs::Model;

#[derive(Model)]
#[vhs(table = "")]
struct Document<T> {
    #[vhs(range_key)]
    #[large]
    sk: String,
    #[vhs(range_key)]
    version: u32,
    #[large(content_type = "text/html")]
    html: String,
    #[vhs(rename = "version")]
    other: T,
}

fn main() {}
