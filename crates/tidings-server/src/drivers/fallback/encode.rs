//! Message and event text shared by the HTTP transports.

use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use tidings_core::{EncodingSlot, Message, PayloadKind};
use tidings_proto::json;

/// A message as one line of JSON: the same object `/ws` sends, encoded once per message and
/// shared by every subscriber; binary payloads (which `/ws` sends as binary frames) carry
/// their bytes as `"base64"` here, since these transports are text.
pub(crate) fn message_json(msg: &Arc<Message>) -> Bytes {
    if msg.kind != PayloadKind::Binary {
        return msg.encoded(EncodingSlot::Json, |m| {
            json::encode_message(
                &m.topic,
                m.offset,
                &m.epoch,
                crate::drivers::wire_kind(m.kind),
                &m.payload,
            )
            .bytes
        });
    }
    use base64::Engine;
    let obj = serde_json::json!({
        "type": "message",
        "topic": &*msg.topic,
        "offset": msg.offset,
        "epoch": &*msg.epoch,
        "base64": base64::engine::general_purpose::STANDARD.encode(&msg.payload),
    });
    Bytes::from(obj.to_string())
}

/// `{"type":"subscribed","cursor":...,"gaps":[...]}`, the first thing a feed says.
pub(crate) fn subscribed(cursor: &str, gaps: &[super::feed::Gap]) -> String {
    serde_json::json!({"type": "subscribed", "cursor": cursor, "gaps": gaps}).to_string()
}

/// Appends `items` as a JSON array.
pub(crate) fn json_array(out: &mut BytesMut, items: impl IntoIterator<Item = Bytes>) {
    out.put_u8(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(&item);
    }
    out.put_u8(b']');
}
