package webhookserver

import (
	"encoding/json"
	"net/http"
)

// answer is the body Tencent expects from every callback.
type answer struct {
	ActionStatus string `json:"ActionStatus"`
	ErrorCode    int    `json:"ErrorCode"`
	ErrorInfo    string `json:"ErrorInfo"`
}

var okBody = mustJSON(answer{ActionStatus: "OK"})

func mustJSON(a answer) []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	return b
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

// writeFail answers FAIL with the HTTP status as ErrorCode, so logs on both sides match.
func writeFail(w http.ResponseWriter, status int, info string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(answer{ActionStatus: "FAIL", ErrorCode: status, ErrorInfo: clip(info, maxErrorInfoBytes)}))
}
