module github.com/shadowsync/shadowsync/internal/jsoncompare

go 1.26.0

require (
	github.com/go-json-experiment/json v1.27.2
	github.com/shadowsync/shadowsync v0.0.0
)

replace github.com/shadowsync/shadowsync => ../..
