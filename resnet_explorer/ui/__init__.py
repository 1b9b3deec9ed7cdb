"""The only core package that imports Streamlit: session-state accessors and shared widgets."""
