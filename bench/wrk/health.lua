-- wrk -s bench/wrk/health.lua URL: GET /health, to measure wrk's own ceiling.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
require("common")

wrk.method = "GET"
wrk.path = "/health"
