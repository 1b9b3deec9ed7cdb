"""The app's own navigation, also for a page opened by its URL on a freshly started server.

`app.py` declares the pages with `st.navigation` (Home, then the files in pages/, with icons).
Streamlit decides once per server process whether the app uses its legacy pages/ routing: until
some session has run `st.navigation`, a `pages/` folder beside the entry file means legacy
routing, so the first visitor who opens e.g. /Compare directly gets that page under Streamlit's
own sidebar ("app" for the home page, no icons) and every later session does too until someone
opens the home page (`streamlit.runtime.pages_manager.PagesManager.uses_pages_directory`; it is
set to False by `st.navigation`). Each page calls `through_app()` first: under legacy routing it
turns that off and reruns, so the run goes through `app.py`'s navigation to the same URL.
"""

from __future__ import annotations

import streamlit as st

__all__ = ["through_app"]

_RERUN = "rx_nav_rerun"  # this session has rerun through app.py once


def through_app() -> None:
    """Rerun through `app.py`'s navigation when Streamlit is still routing by the pages/ folder."""
    from streamlit.runtime.pages_manager import PagesManager

    # Once per session: Streamlit's AppTest resets the flag before every run, and a rerun each time
    # would never end there; in a server, app.py's st.navigation keeps it off after the first rerun.
    if PagesManager.uses_pages_directory and not st.session_state.get(_RERUN):
        st.session_state[_RERUN] = True
        PagesManager.uses_pages_directory = False  # what st.navigation does; the rerun then runs app.py
        st.rerun()
