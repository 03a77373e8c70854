// File URLs to paths with node:url, since @std/path is out of reach.
import { fileURLToPath } from "node:url";

export function fromFileUrl(url: URL): string {
  return fileURLToPath(url);
}
