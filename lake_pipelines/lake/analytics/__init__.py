"""DataFusion over the lake: sessions, our functions, the named gold queries."""
