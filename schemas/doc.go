// Package schemas derives JSON Schemas from device structs and validates incoming
// desired state against them, so that bad input never reaches Reconcile.
package schemas
