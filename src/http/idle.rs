//! Idle timeouts on the bytes a request moves: a request body that stops
//! arriving, and a download the client stops reading. Without them a slow
//! or stalled client holds an upload's reservation, a Kubo stream or a
//! connection for as long as it likes.

use std::time::Duration;

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::stream::FusedStream;
use futures_util::{Stream, StreamExt};

/// Chunks a download keeps ready ahead of the client.
const DOWNLOAD_CHUNKS_AHEAD: usize = 2;

/// `body`, ending with an error once no byte arrived for `idle`.
pub fn request_body<S>(
    body: S,
    idle: Duration,
) -> impl FusedStream<Item = Result<Bytes, PayloadError>>
where
    S: Stream<Item = Result<Bytes, PayloadError>>,
{
    futures_util::stream::unfold(Some(Box::pin(body)), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(error))) => Some((Err(error), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no byte of the body arrived for {}s (server.idle_timeout_secs)",
                        idle.as_secs()
                    ),
                ))),
                None,
            )),
        }
    })
    // A multipart reader may poll again after the end.
    .fuse()
}

/// `content`, read ahead by a task that gives up once the client has taken
/// nothing for `idle`: the source (a Kubo stream) is dropped then, and the
/// response ends short, which closes the connection.
pub fn download<S, E>(content: S, idle: Duration) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(DOWNLOAD_CHUNKS_AHEAD);
    tokio::spawn(async move {
        let mut content = std::pin::pin!(content);
        while let Some(item) = content.next().await {
            match tokio::time::timeout(idle, sender.send(item)).await {
                Ok(Ok(())) => {}
                // The client went away, or stopped reading.
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_ends_with_an_error() {
        let stalled = futures_util::stream::iter([Ok(Bytes::from_static(b"a"))])
            .chain(futures_util::stream::pending());
        let mut body = std::pin::pin!(request_body(stalled, Duration::from_secs(5)));
        assert_eq!(body.next().await.unwrap().unwrap(), "a");
        let error = body.next().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("5s"), "{error}");
        assert!(body.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_nobody_reads_drops_its_source() {
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let source = futures_util::stream::repeat_with(|| Ok::<_, ()>(Bytes::from_static(b"x")))
            .map(move |item| {
                let _keep = &dropped_tx;
                item
            });
        let stream = download(source, Duration::from_secs(5));
        // Never read: within the idle time (and a little), the source is gone.
        let waited = tokio::time::timeout(Duration::from_secs(6), dropped_rx).await;
        assert!(waited.is_ok(), "the source was not dropped");
        drop(stream);
    }
}
