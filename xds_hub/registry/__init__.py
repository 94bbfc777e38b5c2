"""The XDS.b Document Registry: ITI-42 registration, ITI-18 stored queries, ITI-57/62 updates."""
