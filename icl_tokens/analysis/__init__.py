"""Analysis of saved results: paper-layout tables, statistics, token counts."""
