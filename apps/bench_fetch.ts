// The fetch-app benchmark (scenario "fetch" in bench/run.ts): tsgi adapts a `fetch` handler to
// the TSGI contract, and this measures what that adaptation costs against apps/bench_app.ts.

export default {
  fetch(_request: Request): Response {
    return new Response("Hello, World!");
  },
};
