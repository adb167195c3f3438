//! The `method` label of request metrics and spans, in one place so both name a method
//! the same way and neither lets a client make up new label values.

/// The `method` label: one of HTTP's methods, or `other`. hyper accepts any token as a
/// method, so labelling by the raw method would let a client create a series per request.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::TRACE => "TRACE",
        M::CONNECT => "CONNECT",
        _ => "other",
    }
}
