# The README's two commands. Each makes .venv if needed and installs requirements.txt into it.
.PHONY: install app test

install:
	python3 -m venv .venv
	.venv/bin/pip install -r requirements.txt

app: install
	.venv/bin/streamlit run streamlit_app.py

test: install
	.venv/bin/python -m pytest -n 2 tests
