// A resumable upload from a browser with tus-js-client, then a download
// through a signed link. The two backend* functions stand for calls your
// own server makes with its API key; a browser must never hold one.
"use strict";

const CHUNK_BYTES = 5 * 1024 * 1024;

async function backendCall(apiKey, method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + apiKey, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error ? answer.error.message : response.statusText);
  return answer;
}

// Your back end: a one-use tus upload URL for this user's file.
function backendUploadUrl(apiKey, file) {
  return backendCall(apiKey, "POST", "/uploads", { max_bytes: file.size, expires_in_secs: 3600 });
}

// Your back end: a download link to a stored file, and its pin state.
async function backendDownload(apiKey, cid) {
  const [file, link] = await Promise.all([
    backendCall(apiKey, "GET", "/files/" + encodeURIComponent(cid)),
    backendCall(apiKey, "POST", "/files/" + encodeURIComponent(cid) + "/links", { expires_in_secs: 3600 }),
  ]);
  return { pin: file.pin, url: link.url };
}

const $ = (id) => document.getElementById(id);
let upload = null;

function show(status) { $("status").textContent = status; }

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const apiKey = $("api-key").value.trim();
  const file = $("file").files[0];
  if (!file) return;
  $("download").hidden = true;
  $("cid").textContent = "-";
  $("pin").textContent = "-";
  show("asking for an upload URL");
  let endpoint;
  try {
    endpoint = (await backendUploadUrl(apiKey, file)).url;
  } catch (error) {
    show("failed: " + error.message);
    return;
  }
  let cid = null;
  upload = new tus.Upload(file, {
    endpoint,
    chunkSize: CHUNK_BYTES,
    retryDelays: [0, 1000, 3000, 5000],
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    onProgress(sent, total) {
      const percent = total ? Math.floor((sent / total) * 100) : 0;
      $("progress").value = percent;
      $("percent").textContent = percent + "%";
    },
    onAfterResponse(request, response) {
      const path = response.getHeader("X-Ipfs-Path");
      if (path) cid = path.replace(/^\/ipfs\//, "");
    },
    onError(error) {
      show("failed: " + error.message);
    },
    async onSuccess() {
      $("pause").disabled = true;
      $("resume").disabled = true;
      $("cid").textContent = cid;
      show("stored");
      try {
        const { pin, url } = await backendDownload(apiKey, cid);
        $("pin").textContent = pin.status + " (" + (pin.pinned_peers ?? "?") + " peers)";
        $("download").href = url;
        $("download").hidden = false;
      } catch (error) {
        show("stored; no link: " + error.message);
      }
    },
  });
  $("pause").disabled = false;
  show("uploading");
  upload.start();
});

$("pause").addEventListener("click", () => {
  if (!upload) return;
  upload.abort();
  $("pause").disabled = true;
  $("resume").disabled = false;
  show("paused");
});

$("resume").addEventListener("click", () => {
  if (!upload) return;
  upload.start();
  $("pause").disabled = false;
  $("resume").disabled = true;
  show("uploading");
});
