// PROXY=node: JupyterHub's configurable-http-proxy (node_modules/), with the portal's secret header on the
// portal's route only. Preloaded before the proxy's own command-line entry point:
//
//     node --import file:///…/hubconfig/nodeproxy.mjs node_modules/.bin/configurable-http-proxy \
//         [the proxy's own options] --cfps-portal-target=http://127.0.0.1:8010 --cfps-portal-header=X-Cfps-Proxy:SECRET
//
// The header (PROXY_SECRET, accounts/throttle.py) is what makes the portal believe the X-Forwarded-For entry
// the proxy appends. The proxy's `--custom-header` adds a header to every request it forwards, students'
// servers included, where any student could read it; here it goes with the requests forwarded to the portal's
// own address and no others, and any copy a client sent is dropped from every request. hubconfig/pyproxy.py
// does the same for PROXY=python; proxy_command in hubconfig/config.py writes the two options, which are taken
// off the command line before the proxy reads it.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const TARGET_OPTION = "--cfps-portal-target=";
const HEADER_OPTION = "--cfps-portal-header=";

let portalTarget = "";
let header = "";
process.argv = process.argv.filter((arg) => {
  if (arg.startsWith(TARGET_OPTION)) {
    portalTarget = arg.slice(TARGET_OPTION.length).replace(/\/+$/, "");
    return false;
  }
  if (arg.startsWith(HEADER_OPTION)) {
    header = arg.slice(HEADER_OPTION.length);
    return false;
  }
  return true;
});
const colon = header.indexOf(":");
const headerName = (colon < 0 ? header : header.slice(0, colon)).trim().toLowerCase(); // Node's req.headers
const headerValue = colon < 0 ? "" : header.slice(colon + 1).trim();

// The same module the entry point imports (by its real path, as Node resolves the main script's imports).
const entryPoint = fs.realpathSync(process.argv[1]);
const library = path.join(path.dirname(entryPoint), "..", "lib", "configproxy.js");
const { default: ConfigurableProxy } = await import(pathToFileURL(library).href);

const targetForReq = ConfigurableProxy.prototype.targetForReq;
ConfigurableProxy.prototype.targetForReq = async function (req) {
  const match = await targetForReq.call(this, req);
  if (headerName) {
    delete req.headers[headerName];
    if (match && portalTarget && String(match.target).replace(/\/+$/, "") === portalTarget) {
      req.headers[headerName] = headerValue;
    }
  }
  return match;
};
