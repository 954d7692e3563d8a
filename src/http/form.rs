//! Reading multipart forms: the parts' checks shared by the routes that
//! take them.

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::header;
use actix_web::HttpRequest;
use futures_util::StreamExt;

use crate::error_code::ErrorCode;
use crate::files::FilesError;

pub fn is_multipart(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

pub fn malformed(error: MultipartError) -> FilesError {
    FilesError::invalid(
        ErrorCode::InvalidMultipart,
        format!("malformed multipart body: {error}"),
    )
}

/// The form's next part, or `None` when it has no more.
pub async fn next_part(form: &mut Multipart) -> Result<Option<Field>, FilesError> {
    form.next().await.transpose().map_err(malformed)
}

/// A small part read whole as text, refused past `limit` bytes.
pub async fn text_field(field: &mut Field, limit: usize) -> Result<String, FilesError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(malformed)?;
        if bytes.len() + chunk.len() > limit {
            return Err(FilesError::invalid(
                ErrorCode::FieldTooLarge,
                format!("form field {name:?} is over {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| {
        FilesError::invalid(
            ErrorCode::InvalidField,
            format!("form field {name:?} is not UTF-8"),
        )
    })
}
