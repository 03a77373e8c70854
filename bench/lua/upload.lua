-- 1 MiB POST bodies to /upload; wrk.format adds the Content-Length.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", 1048576)
