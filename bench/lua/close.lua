-- A new TCP connection per request: the server closes after each response and wrk reconnects.
wrk.headers["Connection"] = "close"
