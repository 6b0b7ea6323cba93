from tfiqa.cli.base import main

main()
