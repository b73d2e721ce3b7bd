"""One trainer per engine; each takes a prepared dataset folder and writes a voice version folder."""
