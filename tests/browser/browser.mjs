// Headless Chromium, driven by playwright-core, as a front end on another
// origin: uploads through a signed tus URL, downloads through a signed
// link, then loads /docs with the network limited to the gateway and, when
// asked, uses /console. Arguments are JSON in argv[2]: { chromium, gateway,
// apiKey, pagePort, outputDir, file, console }. Results are printed as one JSON line.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const pageOrigin = `http://localhost:${options.pagePort}`;
const files = {
  "/": ["text/html", readFileSync(join(here, "page.html"))],
  "/tus.min.js": ["text/javascript", readFileSync(join(here, "node_modules/tus-js-client/dist/tus.min.js"))],
};
const server = createServer((request, response) => {
  const file = files[request.url];
  if (!file) { response.writeHead(404).end(); return; }
  response.writeHead(200, { "Content-Type": file[0] }).end(file[1]);
});
await new Promise((resolve) => server.listen(options.pagePort, "127.0.0.1", resolve));

// The page's back end: it holds the API key, the browser never does.
async function backend(method, path, body) {
  const response = await fetch(options.gateway + path, {
    method,
    headers: { Authorization: `Bearer ${options.apiKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

const result = {};
const browser = await chromium.launch({ executablePath: options.chromium, args: ["--no-sandbox"] });
try {
  const bytes = readFileSync(options.file);
  const context = await browser.newContext();
  const page = await context.newPage();
  const failed = [];
  page.on("requestfailed", (request) => failed.push(request.url()));
  await page.goto(pageOrigin + "/");
  const { url: uploadUrl } = await backend("POST", "/uploads", { max_bytes: bytes.length, owner: "browser-user" });
  result.cid = await page.evaluate(
    ([url, name, data]) => window.uploadThroughLink(url, name, data),
    [uploadUrl, "from-the-browser.bin", bytes.toString("base64")],
  );
  const { url: downloadUrl } = await backend("POST", `/files/${result.cid}/links`, { expires_in_secs: 600 });
  result.download = await page.evaluate((url) => window.downloadThroughLink(url), downloadUrl);
  result.expectedSha256 = createHash("sha256").update(bytes).digest("hex");
  result.reusedLink = await page.evaluate(
    (url) => fetch(url, {
      method: "POST",
      headers: { "Tus-Resumable": "1.0.0", "Upload-Length": "1", "Upload-Metadata": "filename YWdhaW4=" },
    })
      .then(async (r) => ({ status: r.status, body: await r.json() })),
    uploadUrl,
  );
  result.failedRequests = failed;
  await context.close();

  // The API reference, with nothing but the gateway reachable.
  const docs = await browser.newContext();
  const blocked = [];
  await docs.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(options.gateway + "/")) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  const docsPage = await docs.newPage();
  await docsPage.goto(options.gateway + "/docs");
  await docsPage.locator("h2", { hasText: "Create a resumable upload" }).first().waitFor({ timeout: 60000 });
  result.docsTitle = await docsPage.locator("h1").first().textContent();
  result.docsOperations = await docsPage.locator("h2").count();
  result.docsBlocked = blocked;
  await docsPage.screenshot({ path: join(options.outputDir, "docs.png"), fullPage: false });
  await docs.close();

  if (options.console) {
    const consoleContext = await browser.newContext();
    const consolePage = await consoleContext.newPage();
    await consolePage.goto(options.gateway + "/console");
    await consolePage.fill("#api-key", options.apiKey);
    // Other bytes than the page's upload, so the two files stay apart.
    const consoleBytes = Buffer.concat([bytes, Buffer.from("from the console")]);
    result.consoleExpectedSha256 = createHash("sha256").update(consoleBytes).digest("hex");
    await consolePage.setInputFiles("#file", {
      name: "from-the-console.bin",
      mimeType: "application/octet-stream",
      buffer: consoleBytes,
    });
    await consolePage.click("#start");
    await consolePage.locator("#download").waitFor({ state: "visible", timeout: 120000 });
    result.consoleCid = await consolePage.locator("#cid").textContent();
    result.consolePin = await consolePage.locator("#pin").textContent();
    const link = await consolePage.locator("#download").getAttribute("href");
    result.consoleDownload = await consolePage.evaluate(async (url) => {
      const response = await fetch(url);
      const digest = await crypto.subtle.digest("SHA-256", await response.arrayBuffer());
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    }, link);
    await consolePage.screenshot({ path: join(options.outputDir, "console.png") });
    await consoleContext.close();
  }
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
