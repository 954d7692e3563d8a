// tus-js-client in Node, driven by the Rust tests. Arguments are JSON in
// argv[2]: { endpoint, uploadUrl?, file, chunkSize, headers?, metadata?,
// abortAfterChunks?, badChecksum? }. Each thing that happens is printed as
// one JSON line, which the test reads.
import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const options = JSON.parse(process.argv[2]);
const bytes = readFileSync(options.file);
const say = (event) => console.log(JSON.stringify(event));

let chunks = 0;
let cid = null;
let firstPatchOffset = null;
const upload = new tus.Upload(bytes, {
  endpoint: options.endpoint,
  uploadUrl: options.uploadUrl ?? null,
  chunkSize: options.chunkSize,
  headers: options.headers ?? {},
  metadata: options.metadata ?? {},
  retryDelays: null,
  storeFingerprintForResuming: false,
  onBeforeRequest(request) {
    if (request.getMethod() === "PATCH") {
      if (firstPatchOffset === null) firstPatchOffset = Number(request.getHeader("Upload-Offset"));
      if (options.badChecksum) {
        request.setHeader("Upload-Checksum", "sha256 " + Buffer.alloc(32, 7).toString("base64"));
      }
    }
  },
  onAfterResponse(request, response) {
    const path = response.getHeader("X-Ipfs-Path");
    if (path) cid = path.replace(/^\/ipfs\//, "");
  },
  onUploadUrlAvailable() {
    say({ event: "created", url: upload.url });
  },
  onChunkComplete(chunkSize, accepted) {
    chunks += 1;
    if (options.abortAfterChunks !== undefined && chunks === options.abortAfterChunks) {
      upload.abort(false).then(() => {
        say({ event: "aborted", url: upload.url, offset: accepted, firstPatchOffset });
        process.exit(0);
      });
    }
  },
  onError(error) {
    say({
      event: "error",
      message: String(error.message),
      status: error.originalResponse ? error.originalResponse.getStatus() : null,
      url: upload.url,
    });
    process.exit(0);
  },
  onSuccess() {
    say({ event: "success", url: upload.url, cid, firstPatchOffset, chunks });
  },
});
upload.start();
