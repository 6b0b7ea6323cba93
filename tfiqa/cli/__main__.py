from tfiqa.cli.group import main

main()
