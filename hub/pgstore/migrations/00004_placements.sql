-- +goose Up
-- Where each workload's replicas go, per cluster, as the placement
-- controller decided: the epoch grows with every change and is what the
-- member fences on; delivered_epoch is the last epoch the member
-- acknowledged (0: deliver again).
CREATE SEQUENCE placement_epoch_seq;
CREATE TABLE placements (
    workload        text   NOT NULL,
    cluster         text   NOT NULL,
    replicas        int    NOT NULL,
    epoch           bigint NOT NULL,
    generation      bigint NOT NULL,
    deleted         bool   NOT NULL DEFAULT false,
    delivered_epoch bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workload, cluster)
);

-- +goose Down
DROP TABLE placements;
DROP SEQUENCE placement_epoch_seq;
