-- 16 requests per write; wrk counts each response, so Requests/sec is per request.
local depth = 16
local batch

init = function(args)
  local requests = {}
  for i = 1, depth do
    requests[i] = wrk.format(nil, nil)
  end
  batch = table.concat(requests)
end

request = function()
  return batch
end
