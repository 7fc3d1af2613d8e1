//! JSON Feed 1.1 (<https://jsonfeed.org/version/1.1>).
//!
//! Feed-level `language` for a language's feed, item-level `language` on
//! every item; WebSub hubs in `hubs`.

use serde_json::{json, Map, Value};

use super::{page_path, url, FeedDoc, Site};
use crate::catalog::Entry;

pub const VERSION_URL: &str = "https://jsonfeed.org/version/1.1";

/// Renders one JSON Feed document (always a subscription document).
pub fn render(site: &Site, doc: &FeedDoc) -> Vec<u8> {
    let scope = doc.scope;
    let mut feed = Map::new();
    feed.insert("version".into(), VERSION_URL.into());
    feed.insert("title".into(), scope.title(site).into());
    feed.insert("description".into(), site.description.clone().into());
    feed.insert("home_page_url".into(), url(site, &scope.dir()).into());
    feed.insert("feed_url".into(), url(site, &doc.path("feed.json")).into());
    feed.insert(
        "language".into(),
        scope.lang_of(site).as_str().to_string().into(),
    );
    feed.insert(
        "authors".into(),
        json!([{ "name": site.author, "url": site.base_url }]),
    );
    if !site.hubs.is_empty() {
        let hubs: Vec<Value> = site
            .hubs
            .iter()
            .map(|h| json!({ "type": "WebSub", "url": h }))
            .collect();
        feed.insert("hubs".into(), hubs.into());
    }
    let items: Vec<Value> = doc.entries.iter().map(|e| item(site, e)).collect();
    feed.insert("items".into(), items.into());
    let mut out = serde_json::to_vec_pretty(&Value::Object(feed)).unwrap_or_default();
    out.push(b'\n');
    out
}

fn item(site: &Site, e: &Entry) -> Value {
    let mut item = Map::new();
    item.insert("id".into(), e.id.clone().into());
    item.insert("url".into(), url(site, &page_path(e)).into());
    item.insert("title".into(), e.title.clone().into());
    item.insert("content_html".into(), e.content.clone().into());
    item.insert("summary".into(), e.summary.clone().into());
    item.insert("date_published".into(), e.published.to_rfc3339().into());
    item.insert("date_modified".into(), e.updated.to_rfc3339().into());
    item.insert("language".into(), e.lang.as_str().to_string().into());
    if let Some(author) = &e.author {
        item.insert("authors".into(), json!([{ "name": author }]));
    }
    if !e.tags.is_empty() {
        item.insert("tags".into(), e.tags.clone().into());
    }
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announcement::lang::LangTag;
    use crate::render::{fixtures, Scope};

    #[test]
    fn reads_back_with_languages() {
        let site = fixtures::site();
        let entries = vec![
            fixtures::entry("tram", "uk", "Трамвай \"2\"", "<p>x</p>"),
            fixtures::entry("bus", "uk", "Автобус", "<p>y</p>"),
        ];
        let scope = Scope::lang(LangTag::parse("uk").unwrap());
        let bytes = render(&site, &FeedDoc::current(&scope, &entries));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["version"], VERSION_URL);
        assert_eq!(v["language"], "uk");
        assert_eq!(v["feed_url"], "https://news.example.org/uk/feed.json");
        assert_eq!(v["hubs"][0]["type"], "WebSub");
        assert_eq!(v["items"][0]["title"], "Трамвай \"2\"");
        assert_eq!(v["items"][0]["language"], "uk");
        assert_eq!(v["items"][1]["id"], entries[1].id);
        assert_eq!(v["items"][0]["tags"][0], "транспорт");
    }
}
