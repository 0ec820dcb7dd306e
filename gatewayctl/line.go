package gatewayctl

import "encoding/json"

// line encodes e as one JSON line; Entry has only strings and a time, so
// encoding cannot fail.
func line(e Entry) []byte {
	b, _ := json.Marshal(e)
	return append(b, '\n')
}
