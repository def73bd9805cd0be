package main

import (
	"testing"

	"github.com/atollhq/atoll/hub/pgtest"
)

// TestMain gives the tests that need one a private PostgreSQL.
func TestMain(m *testing.M) { pgtest.Main(m) }
