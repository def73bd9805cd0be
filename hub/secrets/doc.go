// Package secrets keeps the values of Secret objects: envelope
// encryption over the store's secret_values rows; and the versions of
// configs' and secrets' values that workloads' templates pin.
//
// Every Secret has a data key of its own (32 random bytes, new at every
// change of its data). Its data (text and binary values, length-prefixed)
// is sealed under that data key with AES-256-GCM, bound to the
// object's uid; the data key is sealed in turn by the hub's
// key-encryption key (package hub/keyring, through pgstore's
// PutSecretValue), which never enters the database. A database dump thus
// holds only ciphertext, and rotating the key-encryption key rewraps the
// small data keys (pgstore.RewrapSecrets) without touching the data or
// the objects.
//
// The values never reach the objects table, the change log, watches,
// events or audit rows: the object keeps its keys, sizes and a data
// version (status), and Vault.Write stores the value in the same
// transaction as the object.
//
// Values are kept by version (the resourceVersion of the write that set
// them), a Config's too (config_values, KeepConfig): a workload's template
// pins the versions it uses (Pin, a pgstore.SpecPrepare, in
// api.AnnotationData), and new values write again every workload that uses
// them (Repin, in the same transaction), a new revision each, rolled out
// as any template change, by waves under spec.rollout, and rolled back to
// the old values. An older version stays while a kept revision pins it.
//
// Vault must not decide who may read a value (package hub/httpapi does),
// nor log one.
package secrets
